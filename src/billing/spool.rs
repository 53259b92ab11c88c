//! The local spool (SPEC §3): an append-only file of JSON lines where
//! billing records wait while the database cannot take them.
//!
//! An append returns only after the data reached the disk (`fsync`), so a
//! record acknowledged by the spool survives a crash. Replaying writes each
//! record through the store, whose unique keys (a CDR's session and segment,
//! a charge's session and idempotency key) make a record written twice count
//! once: a replay cut short by a crash is simply replayed again.
//!
//! Lines that cannot be read back (a torn last line after a crash in the
//! middle of an append, or damage) and records the database refuses for
//! good are moved to `<name>.rejected` beside the spool, never deleted: an
//! operator decides what they are.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool {path}: a record cannot be encoded: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One spool file, owned by one writer.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    rejected: PathBuf,
    /// Records in the file (lines).
    records: usize,
}

impl Spool {
    /// Opens (creating the directory and file if needed) the spool `name`
    /// in `dir`, counting what an earlier process left in it.
    pub fn open(dir: &Path, name: &str) -> Result<Spool, SpoolError> {
        let path = dir.join(format!("{name}.spool"));
        let io_err = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io_err)?;
        // The new file's directory entry must be durable too.
        sync_dir(dir).map_err(io_err)?;
        let mut records = 0;
        for line in BufReader::new(file).split(b'\n') {
            if !line.map_err(io_err)?.is_empty() {
                records += 1;
            }
        }
        Ok(Spool {
            rejected: dir.join(format!("{name}.rejected")),
            path,
            records,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends `items`, one JSON line each, and waits until they are on
    /// disk. Either all of them are acknowledged or the call fails.
    pub fn append<T: Serialize>(&mut self, items: &[T]) -> Result<(), SpoolError> {
        if items.is_empty() {
            return Ok(());
        }
        let bytes = self.encode(items)?;
        append_synced(&self.path, &bytes).map_err(|source| SpoolError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.records += items.len();
        Ok(())
    }

    /// Every record in the spool, in the order appended. Lines that do not
    /// decode are moved to the rejected file (see the module docs).
    pub fn load<T: DeserializeOwned>(&self) -> Result<Vec<T>, SpoolError> {
        let io_err = |source| SpoolError::Io {
            path: self.path.clone(),
            source,
        };
        let file = File::open(&self.path).map_err(io_err)?;
        let mut out = Vec::with_capacity(self.records);
        let mut unreadable = Vec::new();
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(io_err)?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice(&line) {
                Ok(item) => out.push(item),
                Err(e) => {
                    tracing::error!(spool = %self.path.display(), error = %e,
                        "unreadable spool line moved to the rejected file");
                    unreadable.extend_from_slice(&line);
                    unreadable.push(b'\n');
                }
            }
        }
        if !unreadable.is_empty() {
            append_synced(&self.rejected, &unreadable).map_err(|source| SpoolError::Io {
                path: self.rejected.clone(),
                source,
            })?;
        }
        Ok(out)
    }

    /// Empties the spool once everything in it is in the database.
    pub fn clear(&mut self) -> Result<(), SpoolError> {
        let file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(|source| SpoolError::Io {
                path: self.path.clone(),
                source,
            });
        file?;
        self.records = 0;
        Ok(())
    }

    /// Keeps one already encoded record in the rejected file.
    pub fn reject_line(&mut self, json: &[u8]) -> Result<(), SpoolError> {
        let mut bytes = Vec::with_capacity(json.len() + 1);
        bytes.extend_from_slice(json);
        bytes.push(b'\n');
        append_synced(&self.rejected, &bytes).map_err(|source| SpoolError::Io {
            path: self.rejected.clone(),
            source,
        })
    }

    fn encode<T: Serialize>(&self, items: &[T]) -> Result<Vec<u8>, SpoolError> {
        let mut bytes = Vec::with_capacity(items.len() * 512);
        for item in items {
            serde_json::to_writer(&mut bytes, item).map_err(|source| SpoolError::Encode {
                path: self.path.clone(),
                source,
            })?;
            bytes.push(b'\n');
        }
        Ok(bytes)
    }
}

/// Appends `bytes` to `path` and syncs the data to disk.
fn append_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_data()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        n: u32,
    }

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn records_survive_reopening_and_clear_empties() {
        let d = dir();
        let mut spool = Spool::open(d.path(), "cdrs").expect("open");
        assert!(spool.is_empty());
        spool.append(&[Rec { n: 1 }, Rec { n: 2 }]).expect("append");
        spool.append(&[Rec { n: 3 }]).expect("append");
        drop(spool);
        let mut spool = Spool::open(d.path(), "cdrs").expect("reopen");
        assert_eq!(spool.len(), 3);
        let back: Vec<Rec> = spool.load().expect("load");
        assert_eq!(back, vec![Rec { n: 1 }, Rec { n: 2 }, Rec { n: 3 }]);
        spool.clear().expect("clear");
        assert!(spool.is_empty());
        assert!(Spool::open(d.path(), "cdrs").expect("reopen").is_empty());
    }

    #[test]
    fn a_torn_line_is_kept_aside_and_the_rest_is_read() {
        let d = dir();
        let mut spool = Spool::open(d.path(), "cdrs").expect("open");
        spool.append(&[Rec { n: 1 }]).expect("append");
        // A crash in the middle of an append leaves half a line.
        append_synced(spool.path(), b"{\"n\":").expect("torn");
        let back: Vec<Rec> = spool.load().expect("load");
        assert_eq!(back, vec![Rec { n: 1 }]);
        let rejected = std::fs::read_to_string(d.path().join("cdrs.rejected")).expect("rejected");
        assert_eq!(rejected, "{\"n\":\n");
    }

    #[test]
    fn refused_records_are_kept() {
        let d = dir();
        let mut spool = Spool::open(d.path(), "charges").expect("open");
        spool.reject_line(b"{\"n\":9}").expect("reject");
        let rejected =
            std::fs::read_to_string(d.path().join("charges.rejected")).expect("rejected");
        assert_eq!(rejected, "{\"n\":9}\n");
        assert!(spool.is_empty(), "rejected records are not replayed");
    }
}
