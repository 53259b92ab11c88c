//! The ledger writer against a fake database that can be down, hang or
//! refuse a record, with a real spool file.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};

use super::*;
use crate::store::StoreError;

const UP: u8 = 0;
const DOWN: u8 = 1;
const HANGING: u8 = 2;
/// Refused for good, whatever the state.
const POISON: u32 = u32::MAX;

/// A database of numbers with a unique key: writing one twice keeps one.
#[derive(Default)]
struct FakeDb {
    rows: Mutex<Vec<u32>>,
    state: AtomicU8,
}

impl FakeDb {
    fn apply(self: &Arc<Self>) -> impl for<'a> Fn(&'a [u32]) -> BatchWrite<'a> {
        let db = self.clone();
        move |batch| {
            let db = db.clone();
            Box::pin(async move {
                match db.state.load(Ordering::SeqCst) {
                    DOWN => return Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
                    HANGING => std::future::pending::<()>().await,
                    _ => {}
                }
                if batch.contains(&POISON) {
                    return Err(StoreError::Conflict("poison".into()));
                }
                let mut rows = db.rows.lock().expect("lock");
                for n in batch {
                    if !rows.contains(n) {
                        rows.push(*n);
                    }
                }
                Ok(())
            })
        }
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::SeqCst);
    }

    fn rows(&self) -> BTreeSet<u32> {
        self.rows.lock().expect("lock").iter().copied().collect()
    }
}

struct Harness {
    db: Arc<FakeDb>,
    dir: tempfile::TempDir,
    tx: mpsc::UnboundedSender<u32>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(db: Arc<FakeDb>, dir: tempfile::TempDir) -> Harness {
    let spool = Spool::open(dir.path(), "cdrs").expect("spool");
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run("test", rx, stop_rx, spool, db.apply()));
    Harness {
        db,
        dir,
        tx,
        stop,
        task,
    }
}

impl Harness {
    fn send(&self, range: std::ops::Range<u32>) {
        for n in range {
            self.tx.send(n).expect("send");
        }
    }

    fn spooled(&self) -> usize {
        Spool::open(self.dir.path(), "cdrs").expect("spool").len()
    }

    async fn stop(self) -> (Arc<FakeDb>, tempfile::TempDir) {
        self.stop.send(true).expect("stop");
        self.task.await.expect("ledger");
        (self.db, self.dir)
    }
}

async fn settle(d: Duration) {
    // Paused time: sleeping advances the clock; the blocking spool I/O
    // runs on real threads, so give it real moments too.
    for _ in 0..10 {
        tokio::time::sleep(d / 10).await;
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn written_straight_through_while_the_database_is_up() {
    let h = start(Arc::default(), tempfile::tempdir().expect("dir"));
    h.send(0..1000);
    settle(Duration::from_millis(100)).await;
    assert_eq!(h.db.rows(), (0..1000).collect());
    assert_eq!(h.spooled(), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_outage_spools_and_the_return_replays_exactly_once() {
    let h = start(Arc::default(), tempfile::tempdir().expect("dir"));
    h.send(0..10);
    settle(4 * crate::write_behind::GATHER_WINDOW).await;
    h.db.set(DOWN);
    h.send(10..300);
    settle(4 * crate::write_behind::GATHER_WINDOW).await;
    assert_eq!(h.spooled(), 290, "spooled while the database is down");
    h.db.set(UP);
    // New records while the spool waits for its replay join it there.
    h.send(300..310);
    settle(Duration::from_secs(15)).await;
    assert_eq!(h.db.rows(), (0..310).collect(), "every record, once");
    assert_eq!(h.spooled(), 0, "the spool is emptied after the replay");
    h.send(310..320);
    settle(4 * crate::write_behind::GATHER_WINDOW).await;
    assert_eq!(h.db.rows(), (0..320).collect());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hanging_database_counts_as_down() {
    let h = start(Arc::default(), tempfile::tempdir().expect("dir"));
    h.db.set(HANGING);
    h.send(0..5);
    settle(WRITE_TIMEOUT + Duration::from_millis(100)).await;
    assert_eq!(h.spooled(), 5);
    h.db.set(UP);
    settle(Duration::from_secs(20)).await;
    assert_eq!(h.db.rows(), (0..5).collect());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_an_outage_keeps_everything_for_the_next_start() {
    let h = start(Arc::default(), tempfile::tempdir().expect("dir"));
    h.db.set(DOWN);
    h.send(0..50);
    settle(Duration::from_millis(20)).await;
    h.send(50..60);
    let (db, dir) = h.stop().await;
    assert!(db.rows().is_empty());
    assert_eq!(Spool::open(dir.path(), "cdrs").expect("spool").len(), 60);

    db.set(UP);
    let h = start(db, dir);
    settle(Duration::from_millis(100)).await;
    assert_eq!(h.db.rows(), (0..60).collect(), "replayed at start");
    assert_eq!(h.spooled(), 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_record_refused_for_good_is_kept_aside_and_the_rest_written() {
    let h = start(Arc::default(), tempfile::tempdir().expect("dir"));
    h.tx.send(1).expect("send");
    h.tx.send(POISON).expect("send");
    h.tx.send(2).expect("send");
    settle(Duration::from_millis(100)).await;
    assert_eq!(h.db.rows(), [1, 2].into_iter().collect());
    let rejected = std::fs::read_to_string(h.dir.path().join("cdrs.rejected")).expect("rejected");
    assert_eq!(rejected, format!("{POISON}\n"));
    h.stop().await;
}
