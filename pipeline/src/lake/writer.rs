//! Exactly-once commits into the lake.
//!
//! A source's rows reach up to four tables, and a Delta commit covers one table. So every
//! table records, in each commit, a Delta application transaction (`txn`) for the source:
//! `appId` = the source's id, `version` = the position of the last line the commit covers.
//! On restart the source resumes from the smallest position over the tables, and a
//! replayed line is written to its table only if that table's position is before it
//! ([`TablePositions::should_write`]). A crash between two tables' commits therefore
//! neither loses nor doubles a row. This is kafka-delta-ingest's protocol, per table.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;

use super::{Lake, LakeError};
use crate::model::schema::{CarrierRows, LakeTable, Lineage, OrderRows, QuarantineRows, TicketRows};
use crate::model::{Event, EventBody, Rejection};

/// Where one source stands in each table, as recorded in the Delta log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TablePositions(pub BTreeMap<LakeTable, Option<i64>>);

impl TablePositions {
    /// Where the source must resume: after the smallest recorded position, or from the
    /// beginning (`None`) if any table has never recorded this source.
    pub fn resume_after(&self) -> Option<i64> {
        LakeTable::ALL.iter().map(|t| self.0.get(t).copied().flatten()).min().flatten()
    }

    /// Whether a line at `position` still has to be written to `table`.
    pub fn should_write(&self, table: LakeTable, position: i64) -> bool {
        self.0.get(&table).copied().flatten().is_none_or(|committed| position > committed)
    }

    /// Records that every table now covers the source up to `position`.
    fn advance_all(&mut self, position: i64) {
        for table in LakeTable::ALL {
            self.0.insert(table, Some(position));
        }
    }
}

/// Rows waiting for the next commit, per table.
///
/// Owned by the ingest loop; bounded by the batch size (`ingest.batch_max_events`), after
/// which the loop commits before accepting more lines.
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

impl Default for PendingBatch {
    fn default() -> Self {
        PendingBatch {
            orders: OrderRows::default(),
            carrier: CarrierRows::default(),
            tickets: TicketRows::default(),
            quarantine: QuarantineRows::default(),
            lines: 0,
            started: None,
        }
    }
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
            (LakeTable::OrderEvents, self.orders.len()),
            (LakeTable::CarrierEvents, self.carrier.len()),
            (LakeTable::TicketEvents, self.tickets.len()),
            (LakeTable::Quarantine, self.quarantine.len()),
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

/// Writes batches for one source into every table, exactly once.
///
/// One writer per source id at a time: two processes writing the same source would both
/// pass the position check.
pub struct LakeWriter {
    /// The source's id, used as the Delta `txn` application id.
    app_id: String,
    tables: BTreeMap<LakeTable, DeltaTable>,
    positions: TablePositions,
}

impl LakeWriter {
    /// Opens (creating if needed) every table and reads this source's positions.
    pub async fn open(lake: &Lake, app_id: impl Into<String>) -> Result<Self, LakeError> {
        let app_id = app_id.into();
        let mut tables = BTreeMap::new();
        let mut positions = TablePositions::default();
        for table in LakeTable::ALL {
            let delta = lake.open_or_create(table).await?;
            let position = transaction_version(&delta, &app_id).await.map_err(LakeError::table(table))?;
            positions.0.insert(table, position);
            tables.insert(table, delta);
        }
        Ok(LakeWriter { app_id, tables, positions })
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The source's positions as of the last commit.
    pub fn positions(&self) -> &TablePositions {
        &self.positions
    }

    /// Commits a batch to every table with `position` (the last line it covers) as the
    /// source's new position. Tables without rows get a commit too, carrying only the
    /// position, so that a restart resumes after this batch, not before it.
    pub async fn commit(&mut self, batch: PendingBatch, position: i64) -> Result<(), LakeError> {
        for (table, rows) in batch.finish()? {
            let delta = self.tables.get_mut(&table).expect("every table is opened in LakeWriter::open");
            let txn = Transaction::new_with_last_update(&self.app_id, position, Some(chrono::Utc::now().timestamp_millis()));
            let properties = CommitProperties::default().with_application_transaction(txn);
            let mut writer =
                RecordBatchWriter::for_table(delta).map_err(LakeError::table(table))?.with_commit_properties(properties);
            if rows.num_rows() > 0 {
                writer.write(rows).await.map_err(LakeError::table(table))?;
            }
            writer.flush_and_commit(delta).await.map_err(LakeError::table(table))?;
        }
        self.positions.advance_all(position);
        Ok(())
    }
}

async fn transaction_version(delta: &DeltaTable, app_id: &str) -> Result<Option<i64>, deltalake::DeltaTableError> {
    delta.snapshot()?.transaction_version(delta.log_store().as_ref(), app_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(entries: &[(LakeTable, Option<i64>)]) -> TablePositions {
        TablePositions(entries.iter().copied().collect())
    }

    #[test]
    fn resume_after_the_table_that_is_furthest_behind() {
        use LakeTable::*;
        let cases = [
            (positions(&[]), None),
            (positions(&[(OrderEvents, Some(10)), (CarrierEvents, Some(10)), (TicketEvents, Some(10)), (Quarantine, Some(10))]), Some(10)),
            (positions(&[(OrderEvents, Some(30)), (CarrierEvents, Some(20)), (TicketEvents, Some(30)), (Quarantine, Some(30))]), Some(20)),
            (positions(&[(OrderEvents, Some(30)), (CarrierEvents, None), (TicketEvents, Some(30)), (Quarantine, Some(30))]), None),
        ];
        for (positions, expected) in cases {
            assert_eq!(positions.resume_after(), expected, "{positions:?}");
        }
    }

    #[test]
    fn replayed_lines_are_written_only_where_missing() {
        use LakeTable::*;
        let p = positions(&[(OrderEvents, Some(30)), (CarrierEvents, Some(20))]);
        let cases = [(OrderEvents, 25, false), (OrderEvents, 30, false), (OrderEvents, 31, true), (CarrierEvents, 25, true), (TicketEvents, 1, true)];
        for (table, position, expected) in cases {
            assert_eq!(p.should_write(table, position), expected, "{table} at {position}");
        }
    }
}
