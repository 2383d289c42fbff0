//! State checkpoints: the whole stream state, the lake versions it reflects and the
//! outputs not yet written, saved to the lake's object store.
//!
//! Each checkpoint is one object, `_stream/checkpoints/<seq>.bin` (postcard, zstd), put
//! with "create only" (the same conditional write Delta commits use): two processors
//! that both think they own the state cannot both write checkpoint `seq`; the loser
//! stops. An object store put is atomic, so a checkpoint is there whole or not at all,
//! and the newest one is the state. Older ones are deleted, keeping [`KEEP`].
//!
//! The object starts with [`MAGIC`] and the state's [`FORMAT`], so that an orderpulse
//! whose state layout changed refuses an old checkpoint by name instead of
//! misreading it.

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
/// The first bytes of every checkpoint object.
const MAGIC: &[u8; 4] = b"opck";
/// The layout of [`StreamState`] in checkpoints. Raise it with every change to what
/// the state serialises; old checkpoints are then refused with [`CheckpointError::Format`].
pub const FORMAT: u16 = 4;

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
    #[error(
        "stream checkpoint {path} holds state format {}, this orderpulse reads format {FORMAT}; to rebuild the state from the event tables, stop every processor of the lake (`orderpulse run`, `orderpulse process`) and run `orderpulse process --once --rebuild` once",
        found.map_or_else(|| "1 (unmarked)".to_string(), |f| f.to_string())
    )]
    Format { path: String, found: Option<u16> },
    /// Another processor wrote this checkpoint first: this one must stop.
    #[error("stream checkpoint {seq} was written by another processor; this one stops (only one may own the state)")]
    Fenced { seq: u64 },
    /// Boxed: a lake error is large, and this error travels through every checkpoint call.
    #[error(transparent)]
    Lake(Box<LakeError>),
}

impl From<LakeError> for CheckpointError {
    fn from(error: LakeError) -> Self {
        CheckpointError::Lake(Box::new(error))
    }
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
        decode(&path, &bytes).map(Some)
    }

    /// Writes `checkpoint` (create-only) and deletes the old ones. Returns its size.
    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<usize, CheckpointError> {
        let path = path_of(checkpoint.seq);
        let bytes = encode(checkpoint).map_err(|e| Self::store_error(&path, e))?;
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

/// A checkpoint's object: [`MAGIC`], [`FORMAT`] (little endian), then the postcard
/// encoding, zstd-compressed.
fn encode(checkpoint: &Checkpoint) -> anyhow::Result<Vec<u8>> {
    let raw = postcard::to_stdvec(checkpoint)?;
    let mut bytes = Vec::with_capacity(raw.len() / 4 + 8);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    zstd::stream::copy_encode(raw.as_slice(), &mut bytes, 1)?;
    Ok(bytes)
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let format_error = |found| CheckpointError::Format { path: path.to_string(), found };
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(format_error(None));
    };
    let (format, compressed) = rest.split_first_chunk::<2>().ok_or_else(|| format_error(None))?;
    let format = u16::from_le_bytes(*format);
    if format != FORMAT {
        return Err(format_error(Some(format)));
    }
    let damaged = |message: String| CheckpointError::Damaged { path: path.to_string(), message };
    let raw = zstd::decode_all(compressed).map_err(|e| damaged(e.to_string()))?;
    let mut checkpoint: Checkpoint = postcard::from_bytes(&raw).map_err(|e| damaged(e.to_string()))?;
    checkpoint.state.share_restored_texts();
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;
    use crate::source::simulator::{Scenario, Simulator};
    use crate::stream::order::{Scan, ScanTexts};
    use crate::stream::state::StreamSettings;

    fn checkpoint() -> Checkpoint {
        let positions = BTreeMap::from([("order_events".to_string(), 7)]);
        Checkpoint { seq: 3, positions, state: StreamState::new(StreamSettings::default()), outbox: Vec::new() }
    }

    #[test]
    fn a_checkpoint_reads_back_as_written() {
        let path = path_of(3);
        let read = decode(&path, &encode(&checkpoint()).unwrap()).unwrap();
        assert_eq!(read.seq, 3);
        assert_eq!(read.positions, checkpoint().positions);
        assert!(read.state == checkpoint().state);
    }

    #[test]
    fn scans_read_back_share_their_texts_again() {
        let mut state = StreamState::new(StreamSettings::default());
        let scenario = Scenario { days: 2, orders_per_day: 100.0, ..Scenario::default() };
        for event in Simulator::new(scenario).unwrap().events() {
            state.apply(event);
        }
        let written = Checkpoint { state, ..checkpoint() };
        let read = decode(&path_of(3), &encode(&written).unwrap()).unwrap();
        assert!(read.state == written.state);
        let scans: Vec<&Scan> = read.state.orders().flat_map(|order| read.state.parcels_of(order)).flat_map(|parcel| &parcel.scans).collect();
        let copies: HashSet<*const ScanTexts> = scans.iter().map(|scan| Arc::as_ptr(&scan.texts)).collect();
        let texts: HashSet<&ScanTexts> = scans.iter().map(|scan| scan.texts.as_ref()).collect();
        assert!(texts.len() < scans.len() / 4, "the simulator repeats scan texts: {} distinct in {} scans", texts.len(), scans.len());
        assert_eq!(copies.len(), texts.len(), "one shared copy of each distinct text");
    }

    #[test]
    fn another_format_is_refused_by_name_and_damage_is_reported_as_damage() {
        let path = path_of(3);
        let good = encode(&checkpoint()).unwrap();
        let mut newer = good.clone();
        newer[MAGIC.len()..MAGIC.len() + 2].copy_from_slice(&(FORMAT + 1).to_le_bytes());
        let unmarked = zstd::encode_all(&postcard::to_stdvec(&checkpoint()).unwrap()[..], 1).unwrap();
        let truncated = &good[..good.len() - 3];
        let cases: [(&[u8], &str); 4] = [
            (&newer, &format!("holds state format {}, this orderpulse reads format {FORMAT}", FORMAT + 1)),
            (&unmarked, "holds state format 1 (unmarked)"),
            (&good[..5], "holds state format 1 (unmarked)"),
            (truncated, "is damaged"),
        ];
        for (bytes, expected) in cases {
            let error = decode(&path, bytes).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }
}
