//! Runs a sipp scenario from `tests/sipp/` against a server, bounded in
//! time, and collects what it said. sipp is the Debian package
//! `sip-tester`; it is mandatory in CI and skipped (with a notice) elsewhere.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// sipp's own `-timeout`; the watchdog kills it a little later.
pub const SIPP_TIMEOUT: &str = "10s";
const WATCHDOG: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct SippOutcome {
    /// Exit status 0: every call of the scenario succeeded.
    pub success: bool,
    /// `None` when killed (by a signal or the watchdog).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub command: String,
    pub stdout: String,
    pub stderr: String,
    /// `-trace_err` log: the unexpected messages.
    pub errors: String,
    /// `-trace_msg` log: every message sent and received.
    pub messages: String,
}

impl SippOutcome {
    /// Everything worth printing when a test fails.
    pub fn report(&self) -> String {
        format!(
            "{}\nexit: {:?} timed out: {}\n--- stdout\n{}\n--- stderr\n{}\n--- errors\n{}\n--- messages\n{}",
            self.command,
            self.exit_code,
            self.timed_out,
            self.stdout,
            self.stderr,
            self.errors,
            self.messages
        )
    }
}

/// Path of a scenario: a file name in `tests/sipp/`, or a path.
pub fn scenario_path(scenario: &str) -> PathBuf {
    let p = PathBuf::from(scenario);
    if p.is_absolute() || p.exists() {
        return p;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario)
}

/// A local UDP port free at the time of asking (for `-p`, `-mp`).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free local UDP port")
        .port()
}

/// Runs `sipp <server> -sf <scenario> -m 1 -timeout 10s -timeout_error ...`
/// plus `extra_args`: `-t t1` for TCP; for the REGISTER scenarios
/// `-s alice -au alice -ap secret -key domain test.example
/// -auth_uri test.example` (sipp's digest-uri is `sip:<remote ip:port>`
/// unless `-auth_uri` is given). `None` when sipp is not installed outside CI.
pub async fn run_sipp(
    scenario: &str,
    server: SocketAddr,
    extra_args: &[&str],
) -> Option<SippOutcome> {
    let dir = tempfile::tempdir().expect("temp dir for sipp logs");
    let errors = dir.path().join("errors.log");
    let messages = dir.path().join("messages.log");
    let path = scenario_path(scenario);
    assert!(path.exists(), "no sipp scenario {}", path.display());
    let mut args: Vec<String> = vec![
        server.to_string(),
        "-sf".into(),
        path.display().to_string(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        SIPP_TIMEOUT.into(),
        "-timeout_error".into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        free_udp_port().to_string(),
        "-mp".into(),
        free_udp_port().to_string(),
        "-nostdin".into(),
        // A failed REGISTER scenario must not send a stray BYE.
        "-default_behaviors".into(),
        "all,-bye".into(),
        "-trace_err".into(),
        "-error_file".into(),
        errors.display().to_string(),
        "-trace_msg".into(),
        "-message_file".into(),
        messages.display().to_string(),
    ];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    let command = format!("sipp {}", args.join(" "));
    let child = tokio::process::Command::new("sipp")
        .args(&args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("sipp is required in CI (Debian package sip-tester)");
            }
            eprintln!("SKIPPED (sipp): install sip-tester");
            return None;
        }
        Err(e) => panic!("cannot run sipp: {e}"),
    };
    // Dropping the future on timeout drops the child, which kills it.
    let (out, timed_out) = match tokio::time::timeout(WATCHDOG, child.wait_with_output()).await {
        Ok(out) => (Some(out.expect("sipp output")), false),
        Err(_) => (None, true),
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Some(SippOutcome {
        success: out.as_ref().is_some_and(|o| o.status.success()),
        exit_code: out.as_ref().and_then(|o| o.status.code()),
        timed_out,
        command,
        stdout: out.as_ref().map(|o| lossy(&o.stdout)).unwrap_or_default(),
        stderr: out.as_ref().map(|o| lossy(&o.stderr)).unwrap_or_default(),
        errors: read(&errors),
        messages: read(&messages),
    })
}

/// sipp running in the background (a UAS, typically), started by
/// [`spawn_sipp`]; [`SippProcess::wait`] collects its outcome. Dropping it
/// kills sipp.
pub struct SippProcess {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    deadline: tokio::time::Instant,
    /// The command line, for reports.
    pub command: String,
}

impl SippProcess {
    /// Waits for sipp to exit, at most until the watchdog given to
    /// [`spawn_sipp`] (counted from the start) fires; then it is killed.
    pub async fn wait(self) -> SippOutcome {
        let deadline = self.deadline;
        self.wait_until(deadline).await
    }

    /// Like [`SippProcess::wait`], but kills sipp after `limit` at most
    /// (to collect what a UAS saw when its peer already failed).
    pub async fn wait_at_most(self, limit: Duration) -> SippOutcome {
        let deadline = self.deadline.min(tokio::time::Instant::now() + limit);
        self.wait_until(deadline).await
    }

    async fn wait_until(mut self, deadline: tokio::time::Instant) -> SippOutcome {
        let status = match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(s) => Some(s.expect("sipp exit status")),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        };
        SippOutcome {
            success: status.is_some_and(|s| s.success()),
            exit_code: status.and_then(|s| s.code()),
            timed_out: status.is_none(),
            command: self.command.clone(),
            stdout: self.read("stdout.log"),
            stderr: self.read("stderr.log"),
            errors: self.read("errors.log"),
            messages: self.read("messages.log"),
        }
    }

    /// Waits until this sipp has bound UDP `port` on 127.0.0.1, so that
    /// nothing is sent to it before it listens. `Err` with what sipp printed
    /// when it exits first: typically a port taken by another test between
    /// [`free_udp_port`] asking and sipp binding it.
    async fn until_listening(&mut self, port: u16, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Some(status) = self.child.try_wait().expect("sipp status") {
                return Err(format!(
                    "{} exited ({status}) before listening:\n{}",
                    self.command,
                    self.logs()
                ));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} does not listen on UDP 127.0.0.1:{port} after {within:?}:\n{}",
                self.command,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// What sipp has written so far to its stdout, stderr and error log.
    fn logs(&self) -> String {
        ["stdout.log", "stderr.log", "errors.log"]
            .iter()
            .map(|name| format!("--- {name}\n{}", self.read(name)))
            .collect()
    }

    /// Output file `name` of this sipp as written so far (empty if none).
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

/// Starts `sipp [server] -sf <scenario> -i 127.0.0.1 -nostdin -trace_err
/// -trace_msg ...` plus `args` in the background, killed by [`SippProcess::wait`]
/// after `watchdog`. Nothing else is implied: the caller gives `-m`,
/// `-timeout`, `-p`, `-mp` and the rest. `server` is `None` for a UAS
/// (`-sf uas_answer.xml -p <port>`). Output goes to files (read by
/// `wait`), so sipp never blocks on a full pipe. `None` when sipp is not
/// installed outside CI.
pub async fn spawn_sipp(
    scenario: &str,
    server: Option<SocketAddr>,
    args: &[&str],
    watchdog: Duration,
) -> Option<SippProcess> {
    let dir = tempfile::tempdir().expect("temp dir for sipp logs");
    let path = scenario_path(scenario);
    assert!(path.exists(), "no sipp scenario {}", path.display());
    let mut all: Vec<String> = server.map(|s| s.to_string()).into_iter().collect();
    all.extend([
        "-sf".into(),
        path.display().to_string(),
        "-i".into(),
        "127.0.0.1".into(),
        "-nostdin".into(),
        "-trace_err".into(),
        "-error_file".into(),
        dir.path().join("errors.log").display().to_string(),
        "-trace_msg".into(),
        "-message_file".into(),
        dir.path().join("messages.log").display().to_string(),
    ]);
    all.extend(args.iter().map(|s| s.to_string()));
    let command = format!("sipp {}", all.join(" "));
    let file = |name: &str| std::fs::File::create(dir.path().join(name)).expect("sipp output file");
    let child = tokio::process::Command::new("sipp")
        .args(&all)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(file("stdout.log"))
        .stderr(file("stderr.log"))
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("sipp is required in CI (Debian package sip-tester)");
            }
            eprintln!("SKIPPED (sipp): install sip-tester");
            return None;
        }
        Err(e) => panic!("cannot run sipp: {e}"),
    };
    Some(SippProcess {
        child,
        dir,
        deadline: tokio::time::Instant::now() + watchdog,
        command,
    })
}

/// A sipp app server (`uas_answer.xml`) answering `calls` INVITEs, its
/// `-timeout` `within`, on a free UDP port of its own; returns it with that
/// port once it listens. Starts again on fresh ports (twice at most) when
/// sipp exits before listening, so a port taken meanwhile by a parallel
/// test does not fail the run; callers create the app server afterwards.
pub async fn spawn_answering_as(calls: usize, within: Duration) -> Option<(SippProcess, u16)> {
    let (calls, timeout) = (calls.to_string(), format!("{}s", within.as_secs()));
    let mut failures = Vec::new();
    for _ in 0..3 {
        let (port, media) = (free_udp_port(), free_udp_port());
        let (port_s, media) = (port.to_string(), media.to_string());
        let mut uas = spawn_sipp(
            "uas_answer.xml",
            None,
            &[
                "-p",
                &port_s,
                "-mp",
                &media,
                "-m",
                &calls,
                "-timeout",
                &timeout,
                "-timeout_error",
            ],
            within + Duration::from_secs(10),
        )
        .await?;
        match uas.until_listening(port, Duration::from_secs(10)).await {
            Ok(()) => return Some((uas, port)),
            Err(failure) => failures.push(failure),
        }
    }
    panic!(
        "the sipp app server never listened:\n{}",
        failures.join("\n")
    );
}

/// Calls made by a sipp client with digest authentication
/// (`uac_invite_auth.xml`).
pub struct AuthenticatedCalls<'a> {
    pub server: SocketAddr,
    /// The Request-URI user.
    pub service: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub domain: &'a str,
    pub calls: usize,
    /// Calls started per second.
    pub rate: u32,
    /// How long each call is held before the BYE, in ms.
    pub hold_ms: u64,
    /// sipp's `-timeout`.
    pub within: Duration,
}

impl AuthenticatedCalls<'_> {
    pub async fn spawn(&self) -> Option<SippProcess> {
        self.spawn_scenario("uac_invite_auth.xml").await
    }

    /// The same calls with another client scenario taking the same keys.
    pub async fn spawn_scenario(&self, scenario: &str) -> Option<SippProcess> {
        let (port, media) = (free_udp_port().to_string(), free_udp_port().to_string());
        let (calls, rate, hold) = (
            self.calls.to_string(),
            self.rate.to_string(),
            self.hold_ms.to_string(),
        );
        let timeout = format!("{}s", self.within.as_secs());
        spawn_sipp(
            scenario,
            Some(self.server),
            &[
                "-p",
                &port,
                "-mp",
                &media,
                "-m",
                &calls,
                "-r",
                &rate,
                "-d",
                &hold,
                "-timeout",
                &timeout,
                "-timeout_error",
                // A failed call must not send a stray BYE.
                "-default_behaviors",
                "all,-bye",
                "-s",
                self.service,
                "-au",
                self.user,
                "-ap",
                self.password,
                "-key",
                "caller",
                self.user,
                "-key",
                "domain",
                self.domain,
            ],
            self.within + Duration::from_secs(10),
        )
        .await
    }
}
