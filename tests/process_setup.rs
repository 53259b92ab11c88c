//! How the `switchboard` process sets itself up (memory, threads), checked
//! on the running binary.

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

/// The names of a running process's threads (Linux: the kernel's `comm`
/// of each task, which is the thread name cut to 15 bytes).
#[cfg(target_os = "linux")]
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc task list")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|comm| comm.trim_end().to_string())
        .collect()
}

/// The SIP engine has a runtime of its own, named `sip`, one thread by
/// default and as many as `SWITCHBOARD_SIP_THREADS` asks for; HTTP and the
/// database writers run on the main runtime's threads beside it.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_sip_runtime_has_as_many_named_threads_as_asked() {
    for (asked, expected) in [(None, 1), (Some("3"), 3)] {
        let db = TestDb::new(Engine::Sqlite)
            .await
            .expect("SQLite needs no set-up");
        let env: Vec<(&str, &str)> = asked
            .map(|n| ("SWITCHBOARD_SIP_THREADS", n))
            .into_iter()
            .collect();
        let server = SwitchboardProcess::start_with_env(
            &db.url,
            &db.spool_dir,
            free_sip_port(),
            free_tcp_port(),
            &env,
        )
        .await;
        let pid = server.pid().expect("the server is running");
        let names = thread_names(pid);
        assert_eq!(
            names.iter().filter(|n| *n == "sip").count(),
            expected,
            "SIP threads with SWITCHBOARD_SIP_THREADS={asked:?}"
        );
        assert!(
            names.len() > expected + 1,
            "the main runtime's workers run beside the SIP threads ({names:?})"
        );
        server.kill().await;
    }
}
