//! Exactly-once commits into the lake.
//!
//! A source is made of *parts*, each with its own positions: a file is one part, a Kafka
//! topic has one part per partition (`<app>-<topic>-<partition>`). A part's rows reach up
//! to four tables, and a Delta commit covers one table. So every table records, in each
//! commit, a Delta application transaction (`txn`) per part the commit covers:
//! `appId` = the part's id, `version` = the position of its last line in the commit.
//! On restart a part resumes from its smallest position over the tables, and a replayed
//! line is written to its table only if that table's position is before it
//! ([`TablePositions::should_write`]). A crash between two tables' commits therefore
//! neither loses nor doubles a row. This is kafka-delta-ingest's protocol, per table.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use arrow::array::RecordBatch;
use deltalake::kernel::transaction::{CommitData, TransactionError};
use deltalake::kernel::{Action, Transaction};
use deltalake::logstore::{CommitOrBytes, LogStore};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use super::{Lake, LakeError};
use crate::background::{spawn_runtime, Priority};
use crate::model::schema::{CarrierRows, LakeTable, Lineage, OrderRows, QuarantineRows, TicketRows};
use crate::model::{Event, EventBody, Rejection};

/// Where each part of a source stands in each table, as recorded in the Delta log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePositions(BTreeMap<LakeTable, BTreeMap<String, i64>>);

impl TablePositions {
    fn get(&self, table: LakeTable, part: &str) -> Option<i64> {
        self.0.get(&table).and_then(|parts| parts.get(part)).copied()
    }

    /// Where `part` must resume: after its smallest recorded position, or from the
    /// beginning (`None`) if any table has never recorded it.
    pub fn resume_after(&self, part: &str) -> Option<i64> {
        LakeTable::ALL.iter().map(|table| self.get(*table, part)).min().flatten()
    }

    /// Whether a line of `part` at `position` still has to be written to `table`.
    pub fn should_write(&self, table: LakeTable, part: &str, position: i64) -> bool {
        self.get(table, part).is_none_or(|committed| position > committed)
    }

    /// Records that `table` covers `part` up to `position` (`None`: not at all).
    pub fn record(&mut self, table: LakeTable, part: &str, position: Option<i64>) {
        let parts = self.0.entry(table).or_default();
        match position {
            Some(position) => parts.insert(part.to_owned(), position),
            None => parts.remove(part),
        };
    }
}

/// Rows waiting for the next commit, per table.
///
/// Owned by the ingest loop; bounded by the batch size (`ingest.batch_max_events`), after
/// which the loop commits before accepting more lines.
#[derive(Default)]
pub struct PendingBatch {
    orders: OrderRows,
    carrier: CarrierRows,
    tickets: TicketRows,
    quarantine: QuarantineRows,
    /// Lines taken into this batch (events, rejections and skipped lines alike).
    pub lines: usize,
    /// When the first line of this batch arrived, for the age-based flush.
    pub started: Option<Instant>,
}

impl PendingBatch {
    /// Counts one line into the batch, whatever became of it.
    pub fn note_line(&mut self) {
        self.lines += 1;
        self.started.get_or_insert_with(Instant::now);
    }

    pub fn push_event(&mut self, event: &Event, lineage: &Lineage<'_>) {
        match &event.body {
            EventBody::Order(order) => self.orders.append(event, order, lineage),
            EventBody::Carrier(scan) => self.carrier.append(event, scan, lineage),
            EventBody::Ticket(ticket) => self.tickets.append(event, ticket, lineage),
        }
    }

    pub fn push_rejection(&mut self, raw: &[u8], rejection: &Rejection, lineage: &Lineage<'_>) {
        self.quarantine.append(raw, rejection, lineage);
    }

    /// Rows per table in this batch.
    pub fn row_counts(&self) -> BTreeMap<LakeTable, usize> {
        BTreeMap::from([
            (LakeTable::OrderEvents, self.orders.rows()),
            (LakeTable::CarrierEvents, self.carrier.rows()),
            (LakeTable::TicketEvents, self.tickets.rows()),
            (LakeTable::Quarantine, self.quarantine.rows()),
        ])
    }

    fn finish(self) -> Result<Vec<(LakeTable, RecordBatch)>, LakeError> {
        let arrow = |table: LakeTable| move |e: arrow::error::ArrowError| LakeError::Data { table, message: e.to_string() };
        Ok(vec![
            (LakeTable::OrderEvents, self.orders.finish().map_err(arrow(LakeTable::OrderEvents))?),
            (LakeTable::CarrierEvents, self.carrier.finish().map_err(arrow(LakeTable::CarrierEvents))?),
            (LakeTable::TicketEvents, self.tickets.finish().map_err(arrow(LakeTable::TicketEvents))?),
            (LakeTable::Quarantine, self.quarantine.finish().map_err(arrow(LakeTable::Quarantine))?),
        ])
    }
}

/// Writes batches of a source's parts into every table, exactly once.
///
/// One writer per part at a time: two processes writing the same part would both pass
/// the position check. (Kafka's consumer group gives each partition one owner.)
pub struct LakeWriter {
    tables: BTreeMap<LakeTable, OpenTable>,
    /// Positions of the parts tracked so far, as of the last commit or [`Self::track`].
    positions: TablePositions,
    /// Per table: the version of the last checkpoint started here, and the task
    /// writing it (see [`CHECKPOINT_EVERY`]).
    checkpoints: BTreeMap<LakeTable, (u64, Option<std::thread::JoinHandle<()>>)>,
}

/// A table as the writer holds it. The `DeltaTable` gives the schema, the partitioning
/// and the log store, and is brought up to date only when positions are read
/// ([`LakeWriter::track`]); commits do not refresh it (see [`commit_table`]), so the
/// version they reached is kept beside it.
struct OpenTable {
    delta: DeltaTable,
    /// The latest version this writer knows of: its own last commit, or the one it read.
    version: u64,
}

impl OpenTable {
    fn new(delta: DeltaTable) -> Self {
        let version = delta.version().unwrap_or(0);
        OpenTable { delta, version }
    }

    /// Brings the table up to its latest version, other writers' commits included.
    async fn refresh(&mut self) -> Result<(), DeltaTableError> {
        self.delta.update_state().await?;
        self.version = self.delta.version().unwrap_or(0);
        Ok(())
    }
}

/// A table's log gets a checkpoint every this many versions. deltalake would write it
/// inside every hundredth commit, making that commit (and every request waiting on it)
/// as slow as rewriting the table's whole log state; here it runs beside the commits, on
/// a thread of its own (the commit loop may run on a single-threaded runtime, where a
/// spawned task would still hold the commits up), at the lowest CPU priority, one table
/// at a time: on two cores, four checkpoints at normal priority took the CPU from the
/// commits for a second, and every HTTP request waiting on them with it.
const CHECKPOINT_EVERY: u64 = 100;

impl LakeWriter {
    /// Opens (creating if needed) every table.
    pub async fn open(lake: &Lake) -> Result<Self, LakeError> {
        let mut tables = BTreeMap::new();
        for table in LakeTable::ALL {
            tables.insert(table, OpenTable::new(lake.open_or_create(table).await?));
        }
        Ok(LakeWriter { tables, positions: TablePositions::default(), checkpoints: BTreeMap::new() })
    }

    /// Reads the positions of `parts` from the tables' latest versions (another writer
    /// may have advanced them since this one opened: a partition that moved here).
    pub async fn track(&mut self, parts: &[String]) -> Result<(), LakeError> {
        for (table, open) in &mut self.tables {
            open.refresh().await.map_err(LakeError::table(*table))?;
            for part in parts {
                let position = transaction_version(&open.delta, part).await.map_err(LakeError::table(*table))?;
                self.positions.record(*table, part, position);
            }
        }
        Ok(())
    }

    /// The tracked parts' positions as of the last commit.
    pub fn positions(&self) -> &TablePositions {
        &self.positions
    }

    /// Commits a batch to every table, with each part's last position in the batch as
    /// its new position. Tables without rows get a commit too, carrying only positions,
    /// so that a restart resumes after this batch, not before it.
    ///
    /// The tables are written concurrently (each its own task), so on a multi-threaded
    /// runtime their Parquet encoding uses every core. Each table's commit stands alone:
    /// if one fails, the others' positions are still right, and the failed one's is not
    /// advanced.
    pub async fn commit(&mut self, batch: PendingBatch, parts: &BTreeMap<String, i64>) -> Result<(), LakeError> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut tasks = Vec::new();
        for (table, rows) in batch.finish()? {
            let mut open = self.tables.remove(&table).expect("every table is opened in LakeWriter::open");
            let txns: Vec<Transaction> = parts.iter().map(|(part, position)| Transaction::new_with_last_update(part, *position, Some(now))).collect();
            tasks.push(tokio::spawn(async move {
                let result = commit_table(&open.delta, open.version, rows, txns).await.map_err(LakeError::table(table));
                if let Ok(version) = result {
                    open.version = version;
                }
                (table, open, result)
            }));
        }
        let mut first_error = None;
        for task in tasks {
            let (table, open, result) = task.await.map_err(|e| LakeError::Other { what: "a table commit task", message: e.to_string() })?;
            if result.is_ok() {
                self.checkpoint_if_due(table, &open);
            }
            self.tables.insert(table, open);
            match result {
                Ok(_) => parts.iter().for_each(|(part, position)| self.positions.record(table, part, Some(*position))),
                Err(error) => first_error = first_error.or(Some(error)),
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl LakeWriter {
    /// Starts a background checkpoint of `table` at its current version once
    /// [`CHECKPOINT_EVERY`] versions have passed since the last one started here (other
    /// writers' commits count too) and no table's checkpoint is running; a table that
    /// has to wait gets its turn at a later commit. A failed checkpoint costs only read
    /// speed (readers replay more JSON); it is logged, and the next one tries again.
    fn checkpoint_if_due(&mut self, table: LakeTable, open: &OpenTable) {
        let version = open.version;
        let busy = self.checkpoints.values().any(|(_, running)| running.as_ref().is_some_and(|task| !task.is_finished()));
        // Before this writer's first checkpoint, count from the last multiple.
        let (last, _) = self.checkpoints.entry(table).or_insert((version / CHECKPOINT_EVERY * CHECKPOINT_EVERY, None));
        if version < *last + CHECKPOINT_EVERY || busy {
            return;
        }
        let mut delta = open.delta.clone();
        let checkpoint = async move {
            delta.load_version(version).await?;
            deltalake::checkpoints::create_checkpoint(&delta, None).await?;
            // What deltalake's commit would do after a checkpoint: drop the log entries
            // past the table's log retention that it makes unnecessary.
            if delta.snapshot()?.table_config().enable_expired_log_cleanup() {
                deltalake::checkpoints::cleanup_metadata(&delta, None).await?;
            }
            Ok::<_, DeltaTableError>(())
        };
        let task = spawn_runtime(&format!("orderpulse-checkpoint-{table}"), Priority::Idle, async move {
            if let Err(error) = checkpoint.await {
                tracing::warn!(%table, version, %error, "log checkpoint failed; the next one will try again");
            }
        });
        match task {
            Ok(task) => {
                self.checkpoints.insert(table, (version, Some(task)));
            }
            Err(error) => tracing::warn!(%table, %error, "cannot start a checkpoint thread; the next one will try again"),
        }
    }
}

/// Writes one table's rows (maybe none) as Parquet files and commits them with the
/// parts' `txn`s as the version after `known`, or, if other writers took it, after the
/// latest: the version it returns.
///
/// deltalake's own commit refreshes the table's snapshot afterwards, file list included:
/// work that grows with the table's files and that no writer here reads (measured: a
/// commit of 500 events went from 55 to 120 ms over a few hundred commits, most of it in
/// that refresh). So the commit is written to the log here, through the table's log store
/// (a conditional write on S3 and local disk alike), and the snapshot is left as it was.
/// These commits only append, so another writer's commit in between conflicts only if it
/// changed the table's schema or protocol or carried a `txn` of one of our parts; the
/// same check deltalake's conflict checker makes for a blind append.
async fn commit_table(delta: &DeltaTable, known: u64, rows: RecordBatch, txns: Vec<Transaction>) -> Result<u64, DeltaTableError> {
    let mut writer = RecordBatchWriter::for_table(delta)?;
    if rows.num_rows() > 0 {
        writer.write(rows).await?;
    }
    let adds = writer.flush().await?;
    let partition_by = Some(delta.snapshot()?.metadata().partition_columns().to_vec()).filter(|columns| !columns.is_empty());
    let parts: Vec<String> = txns.iter().map(|txn| txn.app_id.clone()).collect();
    let operation = DeltaOperation::Write { mode: SaveMode::Append, partition_by, predicate: None };
    let data = CommitData::new(adds.into_iter().map(Action::Add).collect(), operation, HashMap::new(), txns);
    let log_store = delta.log_store();
    let operation_id = uuid::Uuid::new_v4();
    let bytes = data.get_bytes()?;
    // The same choice as deltalake's: stores with conditional writes take the bytes,
    // others a temporary file to rename.
    let entry = if ["DefaultLogStore", "LakeFSLogStore"].contains(&log_store.name().as_str()) {
        CommitOrBytes::LogBytes(bytes)
    } else {
        let path = deltalake::Path::from_iter(["_delta_log", &format!("_commit_{operation_id}.json.tmp")]);
        object_store::ObjectStoreExt::put(&log_store.object_store(Some(operation_id)), &path, bytes.into()).await?;
        CommitOrBytes::TmpCommit(path)
    };
    let mut version = known + 1;
    loop {
        match log_store.write_commit_entry(version, entry.clone(), operation_id).await {
            Ok(()) => return Ok(version),
            Err(TransactionError::VersionAlreadyExists(_)) => {
                // Check every commit written since, then try after the latest.
                let latest = log_store.get_latest_version(version).await?;
                for taken in version..=latest {
                    let winner = log_store.read_commit_entry(taken).await?.unwrap_or_default();
                    if let Some(conflict) = conflict_with_append(&winner, &parts) {
                        abandon_commit_entry(log_store.as_ref(), version, entry, operation_id).await;
                        return Err(DeltaTableError::Generic(format!("version {taken} was committed by another writer: {conflict}")));
                    }
                }
                version = latest + 1;
            }
            Err(error) => {
                abandon_commit_entry(log_store.as_ref(), version, entry, operation_id).await;
                return Err(error.into());
            }
        }
    }
}

/// Takes back the temporary entry of a commit that will not be made. A failure leaves
/// at most a stray `_commit_*.json.tmp` file behind, which readers never look at, so it
/// is logged rather than returned over the commit's own error.
async fn abandon_commit_entry(log_store: &dyn LogStore, version: u64, entry: CommitOrBytes, operation_id: uuid::Uuid) {
    if let Err(error) = log_store.abort_commit_entry(version, entry, operation_id).await {
        tracing::debug!(version, %error, "the abandoned commit's temporary entry was not removed");
    }
}

/// Why another writer's commit (its log entry) stops an append of `parts`' rows from
/// following it: it changed the schema or protocol, or it carries a `txn` of one of
/// those parts (a second writer of the same part). `None`: the append may follow.
fn conflict_with_append(winner: &[u8], parts: &[String]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        meta_data: Option<serde::de::IgnoredAny>,
        protocol: Option<serde::de::IgnoredAny>,
        txn: Option<Txn>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Txn {
        app_id: String,
    }
    for line in winner.split(|b| *b == b'\n').filter(|line| !line.trim_ascii().is_empty()) {
        let entry: Entry = match serde_json::from_slice(line) {
            Ok(entry) => entry,
            Err(error) => return Some(format!("its log entry does not parse: {error}")),
        };
        if entry.meta_data.is_some() || entry.protocol.is_some() {
            return Some("it changed the table's metadata or protocol".into());
        }
        if let Some(txn) = entry.txn.filter(|txn| parts.contains(&txn.app_id)) {
            return Some(format!("it wrote part {} too", txn.app_id));
        }
    }
    None
}

async fn transaction_version(delta: &DeltaTable, app_id: &str) -> Result<Option<i64>, deltalake::DeltaTableError> {
    delta.snapshot()?.transaction_version(delta.log_store().as_ref(), app_id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use LakeTable::*;

    fn positions(entries: &[(LakeTable, &str, i64)]) -> TablePositions {
        let mut p = TablePositions::default();
        for (table, part, position) in entries {
            p.record(*table, part, Some(*position));
        }
        p
    }

    #[test]
    fn a_part_resumes_after_the_table_that_is_furthest_behind() {
        let all =
            |part: &'static str, at: [i64; 4]| -> Vec<(LakeTable, &'static str, i64)> { LakeTable::ALL.iter().zip(at).map(|(t, p)| (*t, part, p)).collect() };
        let mut three_tables = all("f", [30, 30, 30, 30]);
        three_tables.retain(|(t, _, _)| *t != CarrierEvents);
        let mut two_parts = all("k-0", [10, 10, 10, 10]);
        two_parts.extend(all("k-1", [7, 9, 9, 9]));
        let cases: Vec<(TablePositions, &str, Option<i64>)> = vec![
            (positions(&[]), "f", None),
            (positions(&all("f", [10, 10, 10, 10])), "f", Some(10)),
            (positions(&all("f", [30, 20, 30, 30])), "f", Some(20)),
            (positions(&three_tables), "f", None),
            (positions(&two_parts), "k-0", Some(10)),
            (positions(&two_parts), "k-1", Some(7)),
            (positions(&two_parts), "k-2", None),
        ];
        for (positions, part, expected) in cases {
            assert_eq!(positions.resume_after(part), expected, "{part} in {positions:?}");
        }
    }

    #[test]
    fn an_append_follows_other_writers_appends_only() {
        let parts = ["http".to_owned(), "kafka-orders-0".to_owned()];
        let append = br#"{"commitInfo":{"operation":"WRITE"}}
{"add":{"path":"a.parquet","dataChange":true,"size":1,"partitionValues":{},"modificationTime":0}}
{"txn":{"appId":"simulator","version":9}}"#;
        let compaction = br#"{"remove":{"path":"a.parquet","dataChange":false}}
{"add":{"path":"b.parquet","dataChange":false,"size":1,"partitionValues":{},"modificationTime":0}}"#;
        let cases: [(&[u8], Option<&str>); 6] = [
            (append, None),
            (compaction, None),
            (b"", None),
            (br#"{"txn":{"appId":"kafka-orders-0","version":3}}"#, Some("part kafka-orders-0")),
            (br#"{"metaData":{"id":"x"}}"#, Some("metadata")),
            (b"not json", Some("does not parse")),
        ];
        for (winner, expected) in cases {
            let conflict = conflict_with_append(winner, &parts);
            match expected {
                None => assert_eq!(conflict, None, "{}", String::from_utf8_lossy(winner)),
                Some(word) => assert!(conflict.as_deref().is_some_and(|c| c.contains(word)), "{conflict:?}"),
            }
        }
    }

    #[test]
    fn replayed_lines_are_written_only_where_missing() {
        let p = positions(&[(OrderEvents, "f", 30), (CarrierEvents, "f", 20), (OrderEvents, "g", 5)]);
        let cases = [
            (OrderEvents, "f", 25, false),
            (OrderEvents, "f", 30, false),
            (OrderEvents, "f", 31, true),
            (CarrierEvents, "f", 25, true),
            (TicketEvents, "f", 1, true),
            (OrderEvents, "g", 6, true),
            (OrderEvents, "h", 1, true),
        ];
        for (table, part, position, expected) in cases {
            assert_eq!(p.should_write(table, part, position), expected, "{table} {part} at {position}");
        }
    }
}
