//! Switchboard as a child process, configured the way an operator would
//! (environment variables), for tests that kill it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::{ADMIN_PASSWORD, ADMIN_USER, DOMAIN, JWT_SECRET};

/// A running `switchboard serve`; killed (SIGKILL) when dropped.
pub struct SwitchboardProcess {
    child: tokio::process::Child,
    pub base: String,
    pub sip: SocketAddr,
}

/// A local TCP port free at the time of asking.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local TCP port")
        .port()
}

/// A port free for both UDP and TCP (SIP listens on both).
pub fn free_sip_port() -> u16 {
    loop {
        let port = free_tcp_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl SwitchboardProcess {
    /// Starts the binary on `database_url` with its spool in `spool_dir`,
    /// and waits until `/readyz` answers 200.
    pub async fn start(
        database_url: &str,
        spool_dir: &Path,
        sip_port: u16,
        http_port: u16,
    ) -> SwitchboardProcess {
        Self::start_with_env(database_url, spool_dir, sip_port, http_port, &[]).await
    }

    /// [`SwitchboardProcess::start`] with more environment variables
    /// (settings), set after the defaults above so they win.
    pub async fn start_with_env(
        database_url: &str,
        spool_dir: &Path,
        sip_port: u16,
        http_port: u16,
        env: &[(&str, &str)],
    ) -> SwitchboardProcess {
        let log = std::fs::File::create(spool_dir.with_extension("log")).expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("SWITCHBOARD_SIP_LISTEN", format!("127.0.0.1:{sip_port}"))
            .env("SWITCHBOARD_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("SWITCHBOARD_DOMAIN", DOMAIN)
            .env("SWITCHBOARD_JWT_SECRET", JWT_SECRET)
            .env("SWITCHBOARD_ADMIN_USER", ADMIN_USER)
            .env("SWITCHBOARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SWITCHBOARD_NODE_NAME", "test-node")
            .env("SWITCHBOARD_SPOOL_DIR", spool_dir)
            .env("SWITCHBOARD_AS_PROBE_INTERVAL_SECONDS", "3600")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the switchboard binary");
        let base = format!("http://127.0.0.1:{http_port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "switchboard not ready after 30 s; log: {}",
                std::fs::read_to_string(spool_dir.with_extension("log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SwitchboardProcess {
            child,
            base,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: no shutdown path runs.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }
}
