//! The threads the SIP engine runs on: a tokio runtime of its own (setting
//! `sip_threads`, one by default), apart from the runtime that serves HTTP
//! and writes to the database.
//!
//! Why: a message crosses tasks on its way through (the receive loop, which
//! runs the transaction shard inline, then the relay core; a shard's timers
//! have a task of their own). When the next task
//! is idle, the hand-over on a work-stealing runtime of several workers
//! often wakes a parked worker (a futex or eventfd write, and a context
//! switch on the other core); the relay core is one task, so it gains
//! little from a second worker. With one SIP worker the hand-over is a push
//! onto that worker's own run queue: 12-14 % less CPU per call at 3,000-5,000
//! calls/s on a 2-core machine, no change at 1,000 (bench/RESULTS.md, eighth
//! session). More SIP threads help TCP connections (a task each) and the
//! shards' timer tasks on a machine with cores to spare; UDP receiving,
//! parsing and matching is one task, and the relay core stays one task. The
//! write-behind tasks (publishers, ledgers) and the HTTP API stay on the main
//! runtime, so their batch work never holds up a SIP message.
//!
//! One worker is a current-thread runtime on a thread of its own: the
//! multi-thread scheduler with a single worker still keeps the books of work
//! stealing (busy-time statistics with two clock reads per batch of tasks,
//! the idle-worker handshake on every park), for no one to steal.
//!
//! Nothing here knows SIP: it is a runtime handle and the threads behind it.

use std::io;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

/// A running SIP runtime. Dropping it (or [`SipThreads::stop`]) shuts it
/// down without waiting: tasks still on it are dropped.
pub struct SipThreads {
    /// Several workers: the multi-thread runtime itself.
    runtime: Option<Runtime>,
    /// One worker: tells its thread to drop the runtime it drives.
    stop: Option<oneshot::Sender<()>>,
    handle: Handle,
}

impl SipThreads {
    /// Starts `workers` threads (at least one) named `name`, with IO and
    /// timers enabled.
    pub fn start(name: &str, workers: usize) -> io::Result<Self> {
        if workers <= 1 {
            return Self::start_one(name);
        }
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            stop: None,
        })
    }

    /// A current-thread runtime driven by thread `name` until stopped; its
    /// blocking pool's threads carry the name too.
    fn start_one(name: &str) -> io::Result<Self> {
        let runtime = Builder::new_current_thread()
            .thread_name(name)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // A dropped sender ends the wait as a sent stop does.
                let _ = runtime.block_on(stopped);
                // Dropped here, off any async context: the tasks still on
                // it are dropped without waiting for them.
                runtime.shutdown_background();
            })?;
        Ok(Self {
            runtime: None,
            stop: Some(stop),
            handle,
        })
    }

    /// Where to spawn the SIP tasks and register the SIP sockets
    /// (`handle().enter()` while creating them).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Shuts the runtime down (what dropping does; named for the caller
    /// that ends it on purpose).
    pub fn stop(self) {}
}

impl Drop for SipThreads {
    /// Callable from async code: a runtime dropped the ordinary way would
    /// block the caller's worker until its tasks yield (and tokio panics
    /// when that happens inside a runtime).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;
    use tokio::sync::oneshot;

    use super::*;

    async fn runs_on_named_threads_until_stopped(workers: usize, flavor: RuntimeFlavor) {
        let sip = SipThreads::start("sip-test", workers).expect("start");
        assert_eq!(sip.handle().runtime_flavor(), flavor);
        let name = sip
            .handle()
            .spawn(async { std::thread::current().name().map(str::to_string) })
            .await
            .expect("task");
        assert_eq!(name.as_deref(), Some("sip-test"));
        let (_tx, rx) = oneshot::channel::<()>();
        let pending = sip.handle().spawn(async move {
            let _ = rx.await;
        });
        sip.stop();
        let ended = pending.await.expect_err("the runtime dropped the task");
        assert!(ended.is_cancelled());
    }

    #[tokio::test]
    async fn one_worker_runs_tasks_on_its_named_thread_until_stopped() {
        runs_on_named_threads_until_stopped(1, RuntimeFlavor::CurrentThread).await;
    }

    #[tokio::test]
    async fn several_workers_run_tasks_on_named_threads_until_stopped() {
        runs_on_named_threads_until_stopped(3, RuntimeFlavor::MultiThread).await;
    }
}
