//! The spool's size limit (`maxSpoolSize`): a counter of the bytes the entries hold, shared by
//! the recorder (which adds what it writes) and the uploader (which takes back what it removes),
//! so "may I write N more bytes" is one atomic operation and not a directory walk.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::layout::STATE_DIR;

/// The bytes of every entry's files under `root` (a spool): what [`SpoolBudget`] counts. State
/// files are not counted; symbolic links are not followed.
pub fn spool_usage(root: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_name() == STATE_DIR {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_file() {
            total = total.saturating_add(entry.metadata()?.len());
        } else if kind.is_dir() {
            for file in fs::read_dir(entry.path())? {
                let file = file?;
                if file.file_type()?.is_file() {
                    total = total.saturating_add(file.metadata()?.len());
                }
            }
        }
    }
    Ok(total)
}

/// The spool is full: a write of `wanted` bytes would pass the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit spool is full: {used} of {limit} bytes used, {wanted} more wanted (audit.s3.maxSpoolSize)")]
pub struct SpoolFull {
    /// Bytes in the spool.
    pub used: u64,
    /// The limit.
    pub limit: u64,
    /// Bytes the refused write wanted.
    pub wanted: u64,
}

/// The spool's bytes against its limit. Cheap to clone; clones share the counter.
#[derive(Debug, Clone)]
pub struct SpoolBudget {
    used: Arc<AtomicU64>,
    /// 0: no limit (the bytes are still counted, for metrics).
    limit: u64,
}

impl SpoolBudget {
    /// A budget of `limit` bytes (0: none) of which `used` are taken.
    pub fn new(limit: u64, used: u64) -> Self {
        Self {
            used: Arc::new(AtomicU64::new(used)),
            limit,
        }
    }

    /// A budget of `limit` bytes (0: none) starting from what `root` holds now.
    pub fn scan(root: &Path, limit: u64) -> io::Result<Self> {
        Ok(Self::new(limit, spool_usage(root)?))
    }

    /// Takes `bytes` for a write about to be made, or says the spool is full (and takes
    /// nothing).
    pub fn try_reserve(&self, bytes: u64) -> Result<(), SpoolFull> {
        let result = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                let after = used.saturating_add(bytes);
                (self.limit == 0 || after <= self.limit).then_some(after)
            });
        match result {
            Ok(_) => Ok(()),
            Err(used) => Err(SpoolFull {
                used,
                limit: self.limit,
                wanted: bytes,
            }),
        }
    }

    /// Gives back `bytes`: a reserved write that failed, or an entry removed after its upload.
    pub fn release(&self, bytes: u64) {
        // Never below zero: a recording the recorder did not count (written before a restart
        // and counted by the scan, or by hand) must not wrap the counter.
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Bytes in the spool, as counted.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The limit, if there is one.
    pub fn limit(&self) -> Option<u64> {
        (self.limit != 0).then_some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_would_pass_the_limit_is_refused_and_takes_nothing() {
        let budget = SpoolBudget::new(100, 60);
        assert_eq!(budget.try_reserve(40), Ok(()));
        assert_eq!(
            budget.try_reserve(1),
            Err(SpoolFull {
                used: 100,
                limit: 100,
                wanted: 1
            })
        );
        assert_eq!(budget.used(), 100);
        budget.release(30);
        assert_eq!(budget.try_reserve(30), Ok(()));
        assert_eq!(budget.used(), 100);
    }

    #[test]
    fn no_limit_counts_but_never_refuses() {
        let budget = SpoolBudget::new(0, u64::MAX - 1);
        assert_eq!(budget.limit(), None);
        assert_eq!(budget.try_reserve(10), Ok(()));
        assert_eq!(budget.used(), u64::MAX);
        budget.release(u64::MAX);
        budget.release(5);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn clones_share_the_counter() {
        let budget = SpoolBudget::new(10, 0);
        let recorder = budget.clone();
        assert_eq!(recorder.try_reserve(10), Ok(()));
        assert!(budget.try_reserve(1).is_err());
        budget.release(10);
        assert_eq!(recorder.used(), 0);
    }

    #[test]
    fn usage_counts_entries_and_not_states() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        fs::create_dir_all(root.path().join(STATE_DIR))?;
        fs::write(root.path().join(STATE_DIR).join("a.json"), [0u8; 1000])?;
        fs::create_dir(root.path().join("a"))?;
        fs::write(root.path().join("a").join("events.jsonl"), [0u8; 10])?;
        fs::write(root.path().join("a").join("channel-0.cast"), [0u8; 20])?;
        fs::write(root.path().join("b"), [0u8; 5])?;
        assert_eq!(spool_usage(root.path())?, 35);
        let budget = SpoolBudget::scan(root.path(), 40)?;
        assert_eq!(budget.used(), 35);
        assert!(budget.try_reserve(6).is_err());
        Ok(())
    }
}
