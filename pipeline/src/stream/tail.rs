//! Following an event table: its rows, commit by commit, in the order they were committed.
//!
//! The stream processor reads what the ingest loop committed, so the lake stays the one
//! source of truth and the processor's position in a table is simply a Delta version.
//! Each commit's log entry (`_delta_log/<version>.json`) names the files it adds; those
//! with `dataChange: true` are read, compaction's rewrites (`dataChange: false`) skipped,
//! as their rows were read already. A new follower starts at version 0, so a replay sees
//! the rows in the order a live follower did (which is what makes replays fire the same
//! timers); reading a replaced file needs it not to be vacuumed yet.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::lake::{Lake, LakeError};
use crate::model::rows::events_from_batch;
use crate::model::schema::LakeTable;
use crate::model::Event;

/// Rows of one data file, and the table version that is complete once they are applied.
#[derive(Debug)]
pub struct TailChunk {
    pub table: LakeTable,
    pub events: Vec<Event>,
    /// Set on a commit's (or the starting snapshot's) last chunk: the version to record.
    pub completes: Option<i64>,
}

/// Reads one table from a version on.
pub struct TableTail {
    lake: Lake,
    table: LakeTable,
    store: Arc<dyn ObjectStore>,
    /// The last version whose rows were all handed out; `None` before the first.
    version: Option<i64>,
    /// Files of the version being read, still to hand out.
    pending: Vec<Path>,
    /// The version `pending` belongs to.
    pending_version: Option<i64>,
}

impl TableTail {
    /// A tail that hands out the rows committed after `version` (all rows if `None`).
    pub fn new(lake: &Lake, table: LakeTable, version: Option<i64>) -> Result<Self, LakeError> {
        Ok(TableTail { lake: lake.clone(), table, store: lake.object_store(table.name())?, version, pending: Vec::new(), pending_version: None })
    }

    pub fn table(&self) -> LakeTable {
        self.table
    }

    /// The last version fully handed out.
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    fn error(&self, message: impl std::fmt::Display) -> LakeError {
        LakeError::Data { table: self.table, message: message.to_string() }
    }

    /// The next chunk of rows, or `None` if the table has nothing new.
    pub async fn next_chunk(&mut self) -> Result<Option<TailChunk>, LakeError> {
        if self.pending_version.is_none() && !self.find_next_files().await? {
            return Ok(None);
        }
        // Taken off the list only once read: a failed read is retried, not skipped.
        let events = match self.pending.last() {
            Some(path) => self.read_file(path).await?,
            None => Vec::new(),
        };
        self.pending.pop();
        let completes = if self.pending.is_empty() {
            self.version = self.pending_version.take();
            self.version
        } else {
            None
        };
        Ok(Some(TailChunk { table: self.table, events, completes }))
    }

    /// Finds the files of the next version. A new follower reads the log from version 0,
    /// commit by commit, exactly as a follower that was there all along did; only if the
    /// early log is gone (log retention) does it start from the current snapshot, its
    /// files in the order they were written.
    async fn find_next_files(&mut self) -> Result<bool, LakeError> {
        let version = match self.version {
            Some(version) => version,
            None if self.log_exists(0).await? => -1,
            None => return self.start_from_snapshot().await,
        };
        let next = version + 1;
        let log = Path::from(format!("_delta_log/{next:020}.json"));
        let bytes = match self.store.get(&log).await {
            Ok(found) => found.bytes().await.map_err(|e| self.error(format!("reading {log}: {e}")))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.error(format!("reading {log}: {e}"))),
        };
        let mut files = added_data_files(&bytes).map_err(|e| self.error(format!("{log}: {e}")))?;
        // One file per event date: read them in date order, so a commit spanning days
        // reaches the state in event-time order.
        files.sort();
        files.reverse();
        self.pending = files;
        self.pending_version = Some(next);
        Ok(true)
    }

    async fn log_exists(&self, version: i64) -> Result<bool, LakeError> {
        let log = Path::from(format!("_delta_log/{version:020}.json"));
        match self.store.head(&log).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(format!("reading {log}: {e}"))),
        }
    }

    async fn start_from_snapshot(&mut self) -> Result<bool, LakeError> {
        let Some(delta) = self.lake.open_table(self.table).await? else {
            return Ok(false);
        };
        let snapshot = delta.snapshot().map_err(LakeError::table(self.table))?;
        tracing::warn!(table = %self.table, version = snapshot.version(), "the table's early log is gone: starting from its snapshot, files in the order they were written");
        let mut files: Vec<(i64, Path)> = snapshot.log_data().into_iter().map(|add| (add.modification_time(), add.object_store_path())).collect();
        files.sort();
        self.pending = files.into_iter().rev().map(|(_, path)| path).collect();
        self.pending_version = Some(snapshot.version() as i64);
        Ok(true)
    }

    /// Reads a whole data file (they are one commit's batch: small) and decodes it off
    /// the async threads.
    async fn read_file(&self, path: &Path) -> Result<Vec<Event>, LakeError> {
        let failed = |e: &dyn std::fmt::Display| self.error(format!("reading {path}: {e}"));
        let bytes = self.store.get(path).await.map_err(|e| failed(&e))?.bytes().await.map_err(|e| failed(&e))?;
        let table = self.table;
        let decoded = tokio::task::spawn_blocking(move || -> Result<Vec<Event>, String> {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()).map_err(|e| e.to_string())?;
            let mut events = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|e| e.to_string())?;
                events.extend(events_from_batch(table, &batch).map_err(|e| e.to_string())?);
            }
            Ok(events)
        })
        .await
        .map_err(|e| failed(&e))?;
        decoded.map_err(|e| failed(&e))
    }
}

/// The data files a commit adds (`add` actions with `dataChange: true`).
fn added_data_files(log: &[u8]) -> Result<Vec<Path>, String> {
    #[derive(serde::Deserialize)]
    struct Action {
        add: Option<Add>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Add {
        path: String,
        data_change: bool,
    }
    let text = std::str::from_utf8(log).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut files = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let action: Action = serde_json::from_str(line).map_err(|e| format!("not a Delta action: {e}"))?;
        if let Some(add) = action.add.filter(|a| a.data_change) {
            // Paths in the log are URL-encoded relative URIs.
            files.push(Path::from_url_path(&add.path).map_err(|e| format!("bad path {:?}: {e}", add.path))?);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_changing_adds_are_read() {
        let log = br#"{"commitInfo":{"operation":"WRITE"}}
{"txn":{"appId":"a","version":3}}
{"add":{"path":"event_date=2026-11-20/part-1.parquet","dataChange":true,"size":1,"partitionValues":{},"modificationTime":0}}
{"add":{"path":"event_date=2026-11-20/part-2%20x.parquet","dataChange":false,"size":1,"partitionValues":{},"modificationTime":0}}
{"add":{"path":"event_date=2026-11-21/part%2D3.parquet","dataChange":true,"size":1,"partitionValues":{},"modificationTime":0}}
{"remove":{"path":"old.parquet","dataChange":false}}
"#;
        let files = added_data_files(log).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.to_string()).collect();
        assert_eq!(names, ["event_date=2026-11-20/part-1.parquet", "event_date=2026-11-21/part-3.parquet"]);
        assert!(added_data_files(b"not json").unwrap_err().contains("not a Delta action"));
    }
}
