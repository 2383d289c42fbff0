//! The lake's tables as the last query loaded them, brought up to date for the next one.
//!
//! Opening a Delta table replays its log from the last checkpoint and lists its files;
//! on the bench lake that is most of a small query's time. A table loaded before only
//! has to read the commits made since (one look-up of the next commit's file when there
//! are none), so the API's sessions start from here. Each query still sees the latest
//! committed version of every table: nothing is served stale.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;
use object_store::ObjectStoreExt;

use crate::lake::{Lake, LakeError};
use crate::model::schema::LakeTable;

/// Which table: an event table or a derived one (a rollup, a stream output), each opened
/// (and its errors named) the way [`Lake`] does for its kind.
#[derive(Debug, Clone, Copy)]
pub enum TableRef<'a> {
    Event(LakeTable),
    Derived(&'a str),
}

impl TableRef<'_> {
    pub fn name(&self) -> &str {
        match self {
            TableRef::Event(table) => table.name(),
            TableRef::Derived(name) => name,
        }
    }

    /// A failure of this table, named as [`Lake`] names it.
    pub fn error(&self, message: impl std::fmt::Display) -> LakeError {
        match *self {
            TableRef::Event(table) => LakeError::Data { table, message: message.to_string() },
            TableRef::Derived(name) => LakeError::Derived { name: name.to_owned(), message: message.to_string() },
        }
    }
}

/// Loaded tables by name, shared by every clone (and every scope) of one engine.
#[derive(Debug, Clone)]
pub struct Snapshots {
    lake: Lake,
    loaded: Arc<Mutex<HashMap<String, DeltaTable>>>,
}

impl Snapshots {
    pub fn new(lake: Lake) -> Self {
        Snapshots { lake, loaded: Arc::default() }
    }

    /// The table at its latest committed version, or `None` if it does not exist yet.
    pub async fn latest(&self, table: TableRef<'_>) -> Result<Option<DeltaTable>, LakeError> {
        let name = table.name();
        let known = self.lock().get(name).cloned();
        let current = match known {
            Some(delta) if !has_newer_commit(&delta).await => Some(delta),
            // A log that no longer reaches back to the version loaded (cleaned up since)
            // cannot be read forward: the table is opened afresh instead.
            Some(mut delta) => match delta.load().await {
                Ok(()) => Some(delta),
                Err(error) => {
                    tracing::debug!(table = name, %error, "reopening a table whose log cannot be read forward");
                    self.open(table).await?
                }
            },
            None => self.open(table).await?,
        };
        if let Some(delta) = &current {
            let mut loaded = self.lock();
            // Concurrent queries may have loaded a newer version meanwhile: keep the newest.
            if loaded.get(name).is_none_or(|kept| kept.version() < delta.version()) {
                loaded.insert(name.to_owned(), delta.clone());
            }
        }
        Ok(current)
    }

    async fn open(&self, table: TableRef<'_>) -> Result<Option<DeltaTable>, LakeError> {
        match table {
            TableRef::Event(table) => self.lake.open_table(table).await,
            TableRef::Derived(name) => self.lake.open_derived(name).await,
        }
    }

    /// The map, even if a query panicked while holding it: it holds whole snapshots only,
    /// each inserted in one step, so what is in it is consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DeltaTable>> {
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether the table has a commit after the version loaded (or it cannot tell). Delta
/// writes each version once, as its own `_delta_log/<version>.json`, so when the next one
/// is not there the loaded version is the latest: one look-up of that file instead of the
/// log listing and replay `load` does, which took most of a trivial query's ~37 ms on the
/// bench lake's nine tables (it hands work between threads for every table).
async fn has_newer_commit(delta: &DeltaTable) -> bool {
    let Some(version) = delta.version() else { return true };
    let next = deltalake::logstore::commit_uri_from_version(Some(version + 1));
    !matches!(delta.object_store().head(&next).await, Err(object_store::Error::NotFound { .. }))
}
