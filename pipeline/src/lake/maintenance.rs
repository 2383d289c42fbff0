//! Keeping tables fast after months of small streaming commits: compaction (`optimize`)
//! and log checkpoints, and a summary of what the lake holds (`lake info`).

use serde::Serialize;

use super::{Lake, LakeError};
use crate::model::schema::LakeTable;

/// One table's size and shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableInfo {
    pub table: String,
    /// `None` when the table has not been created yet.
    pub version: Option<u64>,
    pub files: usize,
    pub bytes: i64,
    pub rows: usize,
    pub partitions: usize,
}

/// Describes every table of the lake.
pub async fn info(lake: &Lake) -> Result<Vec<TableInfo>, LakeError> {
    let mut infos = Vec::new();
    for table in LakeTable::ALL {
        let Some(delta) = lake.open_table(table).await? else {
            infos.push(TableInfo { table: table.name().into(), version: None, files: 0, bytes: 0, rows: 0, partitions: 0 });
            continue;
        };
        let state = delta.snapshot().map_err(LakeError::table(table))?;
        let (mut files, mut bytes, mut rows) = (0, 0, 0);
        let mut partitions = std::collections::BTreeSet::new();
        for file in state.log_data().iter() {
            files += 1;
            bytes += file.size();
            rows += file.num_records().unwrap_or(0);
            let path = file.path();
            partitions.insert(path.rsplit_once('/').map(|(dir, _)| dir.to_owned()).unwrap_or_default());
        }
        infos.push(TableInfo { table: table.name().into(), version: delta.version(), files, bytes, rows, partitions: partitions.len() });
    }
    Ok(infos)
}

/// What `optimize` did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    pub table: String,
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions_optimized: u64,
    pub version: Option<u64>,
}

/// Compacts small files into large ones and writes a log checkpoint, table by table.
///
/// Safe while ingest runs: compaction is a Delta transaction that rewrites files without
/// changing rows, and it conflicts with nothing an append does.
pub async fn optimize(lake: &Lake) -> Result<Vec<OptimizeReport>, LakeError> {
    let mut reports = Vec::new();
    for table in LakeTable::ALL {
        let Some(delta) = lake.open_table(table).await? else { continue };
        let (delta, metrics) = delta.optimize().await.map_err(LakeError::table(table))?;
        deltalake::checkpoints::create_checkpoint(&delta, None).await.map_err(LakeError::table(table))?;
        reports.push(OptimizeReport {
            table: table.name().into(),
            files_removed: metrics.num_files_removed,
            files_added: metrics.num_files_added,
            partitions_optimized: metrics.partitions_optimized,
            version: delta.version(),
        });
    }
    Ok(reports)
}
