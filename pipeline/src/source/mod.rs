//! Sources: where lines come from, and how far each has been read.
//!
//! Every source hands the ingest loop [`RawChunk`]s of lines, each line tagged with its
//! *position*: a number that grows along the source and that the source can resume after
//! (a byte offset for files, a sequence number for the simulator). Positions are what
//! the lake's `txn` actions record. Sources run on their own threads and push into a
//! bounded channel, so a slow lake slows the source (backpressure), never the reverse.

pub mod file;
pub mod kafka;
pub mod simulated;
pub mod simulator;

use tokio::sync::mpsc;

/// A run of lines read from one source.
#[derive(Debug, Default)]
pub struct RawChunk {
    /// The lines' bytes, back to back, without their newlines.
    pub data: Vec<u8>,
    /// For each line: where it ends in `data`, and its position in the source.
    pub lines: Vec<(usize, i64)>,
}

impl RawChunk {
    /// Appends a line (without its newline) at `position`.
    pub fn push(&mut self, line: &[u8], position: i64) {
        self.data.extend_from_slice(line);
        self.lines.push((self.data.len(), position));
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The lines with their positions.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], i64)> {
        let mut start = 0;
        self.lines.iter().map(move |&(end, position)| {
            let line = &self.data[start..end];
            start = end;
            (line, position)
        })
    }
}

/// The sending half a source pushes chunks into. Bounded: a full channel blocks the
/// source thread until the ingest loop catches up.
pub type ChunkSender = mpsc::Sender<RawChunk>;

/// How many lines a source puts in one chunk before handing it over.
pub const CHUNK_LINES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_return_their_lines_with_positions() {
        let mut chunk = RawChunk::default();
        chunk.push(b"{\"a\":1}", 8);
        chunk.push(b"", 9);
        chunk.push(b"xyz", 13);
        let lines: Vec<(&[u8], i64)> = chunk.iter().collect();
        assert_eq!(lines, vec![(&b"{\"a\":1}"[..], 8), (&b""[..], 9), (&b"xyz"[..], 13)]);
    }
}
