//! A transfer started by a real SIP client (SPEC §2 claim 6): baresip
//! (Debian package `baresip`), headless, calls voicemail through
//! Switchboard, then transfers the call with its `/transfer` command, a
//! REFER. Switchboard carries the transfer out itself: the conference app
//! server takes the session over and billing gets a second segment.
//!
//! baresip is driven over its `ctrl_tcp` module (netstring-framed JSON
//! commands), with no audio device (a sine source at 48 kHz stereo, the
//! only format `ausine` makes, and a player writing to /dev/null). It is
//! mandatory in CI (`CI` set) and skipped with a notice elsewhere.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use common::relay::{
    add_service, app_server, has_event, method_of, segment_cdrs, session_in, session_when,
    world_on, PASSWORD,
};
use common::sip_ua::{Incoming, SipUa};
use common::sipp::free_udp_port;
use common::{Engine, TestApp, DOMAIN};

both_engines!(baresip_transfers_a_call_by_refer);

enum Started {
    Running(Box<Baresip>),
    /// Not installed (outside CI).
    Missing,
    /// A port picked for it was taken before it bound it.
    PortTaken,
}

fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free TCP port");
    l.local_addr().expect("its address").port()
}

/// A running baresip, killed when dropped; its output goes to files in
/// its config directory, shown when a test fails.
struct Baresip {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    ctrl: TcpStream,
}

impl Baresip {
    /// Starts baresip as alice with Switchboard at `server` as outbound
    /// proxy; `None` when it is not installed (outside CI). Its ports are
    /// picked free and released before baresip binds them, so another
    /// process may take one meanwhile: baresip then exits with "Address
    /// already in use" and is started again on new ports.
    async fn start(server: std::net::SocketAddr) -> Option<Baresip> {
        for _ in 0..5 {
            match Self::start_once(server).await {
                Started::Running(b) => return Some(*b),
                Started::Missing => return None,
                Started::PortTaken => continue,
            }
        }
        panic!("baresip found its ports taken five times in a row");
    }

    async fn start_once(server: std::net::SocketAddr) -> Started {
        let dir = tempfile::tempdir().expect("temp dir for baresip");
        let ctrl_port = free_tcp_port();
        write_config(dir.path(), free_udp_port(), ctrl_port, server);
        let out = std::fs::File::create(dir.path().join("out.log")).expect("baresip log");
        let err = out.try_clone().expect("baresip log");
        let spawned = tokio::process::Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .arg("-s")
            .arg("-t")
            .arg("60")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::env::var_os("CI").is_some() {
                    panic!("baresip is required in CI (Debian package baresip)");
                }
                eprintln!("SKIPPED (baresip): install the Debian package baresip");
                return Started::Missing;
            }
            Err(e) => panic!("cannot run baresip: {e}"),
        };
        let mut ctrl = None;
        for _ in 0..100 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", ctrl_port)).await {
                ctrl = Some(s);
                break;
            }
            if log(dir.path()).contains("Address already in use") {
                return Started::PortTaken;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let b = Baresip {
            child,
            ctrl: match ctrl {
                Some(c) => c,
                None => panic!("baresip's ctrl_tcp never listened:\n{}", log(dir.path())),
            },
            dir,
        };
        b.child.id().expect("baresip runs");
        Started::Running(Box::new(b))
    }

    /// Sends a command (as typed at its menu, without the slash).
    async fn command(&mut self, command: &str, params: &str) {
        let body = json!({"command": command, "params": params, "token": command}).to_string();
        let framed = format!("{}:{body},", body.len());
        self.ctrl
            .write_all(framed.as_bytes())
            .await
            .expect("baresip ctrl_tcp");
    }

    fn log(&self) -> String {
        log(self.dir.path())
    }
}

/// The next request with `method` at `ua` (others skipped); with none
/// within 10 s, the test fails with baresip's log.
async fn next(ua: &mut SipUa, method: &str, phone: &Baresip) -> Incoming {
    loop {
        match ua.recv_within(Duration::from_secs(10)).await {
            Ok(m) if m.is_request() && method_of(&m) == method => return m,
            Ok(_) => {}
            Err(e) => panic!("no {method} ({e:?}); baresip said:\n{}", phone.log()),
        }
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out.log")).unwrap_or_default()
}

/// baresip's config and account: SIP on `sip_port`, commands on
/// `ctrl_port`, no registration, every request through Switchboard.
fn write_config(dir: &Path, sip_port: u16, ctrl_port: u16, server: std::net::SocketAddr) {
    let config = format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         sip_trans_def udp\n\
         audio_source ausine,440\n\
         ausrc_srate 48000\n\
         ausrc_channels 2\n\
         audio_player aufile,/dev/null\n\
         rtp_ports 31000-31998\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module ausine.so\n\
         module aufile.so\n\
         module_app account.so\n\
         module_app menu.so\n\
         module_app ctrl_tcp.so\n\
         ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n"
    );
    std::fs::write(dir.join("config"), config).expect("baresip config");
    let account =
        format!("<sip:alice@{DOMAIN}>;auth_pass={PASSWORD};outbound=\"sip:{server}\";regint=0\n");
    std::fs::write(dir.join("accounts"), account).expect("baresip accounts");
    std::fs::write(dir.join("contacts"), "").expect("baresip contacts");
}

async fn baresip_transfers_a_call_by_refer(engine: Engine) {
    let mut as1 = app_server().await;
    let mut as2 = app_server().await;
    // Default settings: libre (baresip 1.0) gives up on a 407 with any
    // challenge it cannot answer (ENOSYS for SHA-256), so the default
    // challenges with the first algorithm (MD5) alone (SPEC §2).
    let Some(app) = TestApp::spawn(engine).await else {
        return;
    };
    let w = world_on(app, &[&as1]).await;
    let conference = json!({"request_uri_user": "conference"});
    let as2_id = add_service(&w, &as2, "conference", 5, conference).await;
    let Some(mut phone) = Baresip::start(w.app.sip).await else {
        return;
    };

    phone
        .command("dial", &format!("sip:voicemail@{DOMAIN}"))
        .await;
    let invite = next(&mut as1, "INVITE", &phone).await;
    as1.answer_with_sdp(&invite, 7600).await;
    next(&mut as1, "ACK", &phone).await;
    let s = session_in(&w.app, &w.client_id, "established").await;
    let id = s["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // baresip's /transfer: a REFER to the conference service.
    phone
        .command("transfer", &format!("sip:conference@{DOMAIN}"))
        .await;
    let offerless = next(&mut as2, "INVITE", &phone).await;
    assert!(offerless.body().is_empty(), "RFC 3725 flow I");
    as2.answer_with_sdp(&offerless, 7700).await;
    // baresip answers our re-INVITE; its answer comes in as2's ACK.
    let ack = next(&mut as2, "ACK", &phone).await;
    assert!(
        String::from_utf8_lossy(ack.body()).contains("m=audio"),
        "baresip's answer reaches as2:\n{}",
        phone.log()
    );
    let bye = next(&mut as1, "BYE", &phone).await;
    as1.respond(&bye, 200, "OK", &[], None).await;
    let moved = session_when(&w.app, &id, |s: &Value| {
        has_event(s, "transferred") && s["app_server_id"] == as2_id.as_str()
    })
    .await;
    let segments = moved["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{moved}");
    assert_eq!(segments[1]["app_server_id"], as2_id.as_str());

    // The call ends (baresip hangs up after a transfer, or we ask it to):
    // as2 gets the BYE, two CDRs are written.
    phone.command("hangup", "").await;
    let bye = next(&mut as2, "BYE", &phone).await;
    as2.respond(&bye, 200, "OK", &[], None).await;
    let cdrs = segment_cdrs(&w.app, &id, 2).await;
    assert_eq!(cdrs[0]["end_reason"], "transferred");
    assert_eq!(cdrs[1]["app_server_id"], as2_id.as_str());
    phone.command("quit", "").await;
}
