//! How many API requests one connection cost, for the debug log at logout: the figure that
//! decides how many logins a cluster's API server can take.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared counter of API requests. Cheap to clone; clones count together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests(Arc<AtomicUsize>);

impl Requests {
    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn total(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}
