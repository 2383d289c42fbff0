//! State checkpoints: the whole stream state, the lake versions it reflects and the
//! outputs not yet written, saved to the lake's object store.
//!
//! Each checkpoint is one object, `_stream/checkpoints/<seq>.bin` (postcard, zstd), put
//! with "create only" (the same conditional write Delta commits use): two processors
//! that both think they own the state cannot both write checkpoint `seq`; the loser
//! stops. An object store put is atomic, so a checkpoint is there whole or not at all,
//! and the newest one is the state. Older ones are deleted, keeping [`KEEP`].

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::state::{StreamState, TimerFiring};
use crate::lake::{Lake, LakeError};

/// The lake folder of the stream processor's own files.
pub const FOLDER: &str = "_stream";
/// Checkpoints kept besides the newest (for a human to look at after an incident).
const KEEP: usize = 2;

/// What a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Increases by one per checkpoint; the version of the outputs' Delta transaction.
    pub seq: u64,
    /// The last version of each event table (by name) the state reflects.
    pub positions: BTreeMap<String, i64>,
    pub state: StreamState,
    /// Timer firings not yet written to `timer_firings` when the checkpoint was taken.
    pub outbox: Vec<TimerFiring>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("stream checkpoint {path}: {message}")]
    Store { path: String, message: String },
    #[error("stream checkpoint {path} is damaged: {message}")]
    Damaged { path: String, message: String },
    /// Another processor wrote this checkpoint first: this one must stop.
    #[error("stream checkpoint {seq} was written by another processor; this one stops (only one may own the state)")]
    Fenced { seq: u64 },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// Where checkpoints live.
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
}

fn path_of(seq: u64) -> Path {
    Path::from(format!("checkpoints/{seq:020}.bin"))
}

fn seq_of(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".bin")?.parse().ok()
}

impl CheckpointStore {
    pub fn open(lake: &Lake) -> Result<Self, CheckpointError> {
        Ok(CheckpointStore { store: lake.object_store(FOLDER)? })
    }

    fn store_error(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::Store { path: path.to_string(), message: e.to_string() }
    }

    /// The checkpoints' sequence numbers, ascending.
    async fn list(&self) -> Result<Vec<u64>, CheckpointError> {
        let prefix = Path::from("checkpoints");
        let found: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(|e| Self::store_error(&prefix, e))?;
        let mut seqs: Vec<u64> = found.iter().filter_map(|meta| seq_of(&meta.location)).collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The newest checkpoint, if any.
    pub async fn load_latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let Some(seq) = self.list().await?.last().copied() else {
            return Ok(None);
        };
        let path = path_of(seq);
        let bytes = self.store.get(&path).await.map_err(|e| Self::store_error(&path, e))?.bytes().await.map_err(|e| Self::store_error(&path, e))?;
        let damaged = |message: String| CheckpointError::Damaged { path: path.to_string(), message };
        let raw = zstd::decode_all(bytes.as_ref()).map_err(|e| damaged(e.to_string()))?;
        let checkpoint: Checkpoint = postcard::from_bytes(&raw).map_err(|e| damaged(e.to_string()))?;
        Ok(Some(checkpoint))
    }

    /// Writes `checkpoint` (create-only) and deletes the old ones. Returns its size.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<usize, CheckpointError> {
        let path = path_of(checkpoint.seq);
        let raw = postcard::to_stdvec(checkpoint).map_err(|e| Self::store_error(&path, e))?;
        let bytes = zstd::encode_all(raw.as_slice(), 1).map_err(|e| Self::store_error(&path, e))?;
        let size = bytes.len();
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from(bytes), options).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Err(CheckpointError::Fenced { seq: checkpoint.seq }),
            Err(e) => return Err(Self::store_error(&path, e)),
        }
        let seqs = self.list().await?;
        for old in seqs.iter().rev().skip(KEEP + 1) {
            let old = path_of(*old);
            if let Err(e) = self.store.delete(&old).await {
                tracing::warn!(path = %old, error = %e, "cannot delete an old stream checkpoint");
            }
        }
        Ok(size)
    }
}
