//! Sync runs this process is executing in the background (started through `POST .../sync`). The SSE
//! handler follows such a run live through the [`domain::progress::ProgressHub`]; any other run (finished,
//! or running in another process on the same database) is read from the persisted event log instead.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use domain::progress::SyncRunId;

/// The ids of the runs in progress in this process. Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub struct LocalRuns {
    ids: Arc<Mutex<HashSet<SyncRunId>>>,
}

impl LocalRuns {
    pub(crate) fn insert(&self, id: SyncRunId) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    pub(crate) fn remove(&self, id: SyncRunId) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Whether this process is executing run `id` right now.
    pub fn contains(&self, id: SyncRunId) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
    }
}
