//! How the `switchboard` process sets up its memory, checked on the running
//! binary (what `main` does before the servers start).

mod common;

use common::process::{free_sip_port, free_tcp_port, SwitchboardProcess};
use common::{Engine, TestDb};

/// Transparent huge pages are off for the server process: mimalloc advises
/// them on its arenas, and re-faulting a purged 2 MiB page stalled the SIP
/// path (see `refuse_transparent_huge_pages` in main.rs). The kernel reports
/// the process flag as `THP_enabled` in /proc/<pid>/status (Linux 5.0+).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let db = TestDb::new(Engine::Sqlite)
        .await
        .expect("SQLite needs no set-up");
    let server =
        SwitchboardProcess::start(&db.url, &db.spool_dir, free_sip_port(), free_tcp_port()).await;
    let pid = server.pid().expect("the server is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let flag = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim)
        .expect("this kernel reports THP_enabled (Linux 5.0 or later)");
    assert_eq!(
        flag, "0",
        "transparent huge pages are still on for the server"
    );
    server.kill().await;
}
