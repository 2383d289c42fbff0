//! NDJSON from a file (plain, gzip or zstd, recognised by their magic bytes) or stdin.
//!
//! A line's position is the byte offset just after its newline in the (decompressed)
//! stream, so resuming after position `p` means starting to read at byte `p`. Plain files
//! seek there; compressed streams are decompressed and skipped up to it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{ChunkSender, RawChunk, CHUNK_LINES};

/// Where the lines come from.
#[derive(Debug, Clone)]
pub enum NdjsonInput {
    File(PathBuf),
    Stdin,
}

impl NdjsonInput {
    /// `-` means standard input.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            NdjsonInput::Stdin
        } else {
            NdjsonInput::File(PathBuf::from(arg))
        }
    }

    /// The source id recorded in the lake's `txn` actions. A file is identified by its
    /// canonical path, so re-running ingest on the same file resumes it. Standard input
    /// cannot be resumed, so every run is a new source (deduplication still applies).
    pub fn source_id(&self) -> io::Result<String> {
        match self {
            NdjsonInput::File(path) => Ok(format!("orderpulse:file:{}", path.canonicalize()?.display())),
            NdjsonInput::Stdin => Ok(format!("orderpulse:stdin:{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())),
        }
    }

    /// Size in bytes when known (plain files), for progress bars.
    pub fn size_hint(&self) -> Option<u64> {
        match self {
            NdjsonInput::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
            NdjsonInput::Stdin => None,
        }
    }

    /// Checks up front that the input can be read, so a bad path fails with one clear line.
    pub fn check(&self) -> io::Result<()> {
        if let NdjsonInput::File(path) = self {
            File::open(path).map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn sniff(path: &Path) -> io::Result<Compression> {
    let mut magic = [0u8; 4];
    let n = File::open(path)?.read(&mut magic)?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// Reads `input` from after `resume_after` to the end, pushing chunks into `tx`.
/// `on_progress` is told the number of bytes read so far. Returns the bytes read, or stops
/// early (Ok) if the receiver went away.
pub fn read_ndjson(input: &NdjsonInput, resume_after: Option<i64>, tx: &ChunkSender, on_progress: &dyn Fn(u64)) -> io::Result<u64> {
    let start = resume_after.unwrap_or(0).max(0) as u64;
    let reader: Box<dyn BufRead> = match input {
        NdjsonInput::Stdin => Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
        NdjsonInput::File(path) => match sniff(path)? {
            Compression::None => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(start))?;
                return pump(BufReader::with_capacity(1 << 20, file), start, tx, on_progress);
            }
            Compression::Gzip => Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(File::open(path)?))),
            Compression::Zstd => Box::new(BufReader::with_capacity(1 << 20, zstd::Decoder::new(File::open(path)?)?)),
        },
    };
    let mut reader = reader;
    io::copy(&mut (&mut reader).take(start), &mut io::sink())?;
    pump(reader, start, tx, on_progress)
}

/// Splits a stream into lines and sends them in chunks; `offset` is the stream's position.
fn pump(mut reader: impl BufRead, mut offset: u64, tx: &ChunkSender, on_progress: &dyn Fn(u64)) -> io::Result<u64> {
    let mut chunk = RawChunk::default();
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        chunk.push(content, offset as i64);
        if chunk.len() >= CHUNK_LINES {
            on_progress(offset);
            if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return Ok(offset);
            }
        }
    }
    on_progress(offset);
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(input: &NdjsonInput, resume_after: Option<i64>) -> Vec<(String, i64)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        read_ndjson(input, resume_after, &tx, &|_| {}).unwrap();
        drop(tx);
        let mut lines = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            for (line, position) in chunk.iter() {
                lines.push((String::from_utf8(line.to_vec()).unwrap(), position));
            }
        }
        lines
    }

    #[test]
    fn plain_gzip_and_zstd_give_the_same_lines_and_positions() {
        let text = "{\"a\":1}\r\n{\"b\":2}\n\nlast-without-newline";
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("x.ndjson");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.path().join("x.ndjson.gz");
        let mut encoder = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap();
        let zst = dir.path().join("x.ndjson.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();

        let expected = vec![("{\"a\":1}".to_owned(), 9), ("{\"b\":2}".to_owned(), 17), (String::new(), 18), ("last-without-newline".to_owned(), 38)];
        for path in [&plain, &gz, &zst] {
            let input = NdjsonInput::File(path.clone());
            assert_eq!(read_all(&input, None), expected, "{}", path.display());
            assert_eq!(read_all(&input, Some(17)), expected[2..].to_vec(), "resumed {}", path.display());
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = NdjsonInput::File("/no/such/file.ndjson".into()).check().unwrap_err();
        assert!(err.to_string().contains("/no/such/file.ndjson"), "{err}");
    }
}
