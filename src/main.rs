//! The `switchboard` binary: configuration and logging, then the servers.

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use switchboard::app;
use switchboard::config::{Cli, Command, LogFormat, Settings};

fn main() -> std::process::ExitCode {
    refuse_transparent_huge_pages();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let settings = match Settings::resolve(&cli, &matches) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    match command {
        Command::Openapi => {
            println!("{}", switchboard::api::openapi_json());
            return std::process::ExitCode::SUCCESS;
        }
        Command::Config => {
            print!("{}", settings.to_toml());
            return std::process::ExitCode::SUCCESS;
        }
        Command::Serve | Command::Migrate => {}
    }
    init_logging(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("switchboard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let store = app::open_store(&settings).await?;
    if command == Command::Migrate {
        tracing::info!(database = %app::redact_url(&settings.database_url), "migrations applied");
        return Ok(());
    }
    let listeners = app::Listeners::bind(settings.http_listen, settings.sip_listen).await?;
    tracing::info!(http = %settings.http_listen, node = %settings.node_name, "switchboard started");
    app::run(settings, store.clone(), listeners, shutdown_signal()).await?;
    store.close().await;
    tracing::info!("switchboard stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

// mimalloc instead of glibc's malloc: a call allocates some 500 times on
// the SIP path and in publishing, and glibc spent ~270 instructions on
// an allocation and its free (callgrind: 9 % fewer instructions per call, 3-16 %
// less CPU per call at 1,000-3,000 calls/s; bench/RESULTS.md, sixth
// session). SQLite keeps its own allocator calls into the C library.
// Called through `allocator::Allocator`, which takes mimalloc's plain entry
// points where the alignment allows (that module says why).
#[global_allocator]
static GLOBAL: switchboard::allocator::Allocator = switchboard::allocator::Allocator;

/// Turns transparent huge pages off for this process. mimalloc advises
/// huge pages on its arenas (`MADV_HUGEPAGE`, honoured where THP is in
/// `madvise` mode; in `always` mode the kernel uses them unasked) and
/// hands idle pages back to the kernel after a second; the next allocation
/// there faults a whole 2 MiB page in, which the kernel zeroes while the
/// task that allocated waits. At 2,000 calls/s that zeroing was 10 % of
/// Switchboard's CPU samples and the added setup p99 was 10-20 ms; without
/// huge pages it was 3.3-4.0 ms, and peak RSS at 1,000 calls/s 13 % lower
/// (bench/RESULTS.md, seventh session). The flag covers mappings made
/// before it too: the kernel checks it at each fault (prctl(2),
/// PR_SET_THP_DISABLE). The allocator crate's `no_thp` feature only drops
/// the `madvise`, which leaves `always` mode as it was.
fn refuse_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_THP_DISABLE takes four integer
        // arguments and touches no memory of ours.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_THP_DISABLE,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc != 0 {
            // Older kernels or seccomp may refuse; Switchboard works as
            // before, only with the page faults described above.
            eprintln!(
                "switchboard: transparent huge pages left on: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
