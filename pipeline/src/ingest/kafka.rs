//! The Kafka consume loop: messages of every assigned partition into the lake, exactly
//! once, across crashes, restarts and rebalances (kafka-delta-ingest's protocol).
//!
//! - Each partition is a part (`<group>-<topic>-<partition>`); a commit carries a `txn`
//!   per partition it covers, whose version is the last offset written.
//! - The Delta log is the source of truth: on every assignment the loop reads the
//!   assigned partitions' positions from the lake and seeks each to the next offset.
//!   Kafka's own committed offsets are written after each lake commit, only so that lag
//!   tools see them.
//! - On any rebalance, everything not yet committed is dropped (the ingestor is
//!   reopened from the lake) and the partitions still owned are re-read from their lake
//!   positions; a revoked partition's new owner does the same. The message delivered
//!   with a rebalance, and any below a partition's start offset, are ignored: the
//!   first is fetched again after the seek, the others are in the lake.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;

use super::{DecodedChunk, IngestError, IngestOptions, Ingestor};
use crate::lake::Lake;
use crate::source::kafka::{part_id, ConsumerHooks, KafkaConfig};
use crate::source::{RawChunk, CHUNK_LINES};

/// Chunks decoded on a blocking thread, with their parts.
type Decoding = tokio::task::JoinHandle<Vec<(String, DecodedChunk)>>;

/// A partition the loop owns: its lake part id and the first offset to accept.
struct Owned {
    part: String,
    start: i64,
}

/// Consumes until `shutdown` resolves. Broker outages are logged and retried by
/// librdkafka with backoff; only lake errors end the loop.
pub async fn consume(
    lake: &Lake,
    config: &KafkaConfig,
    options: IngestOptions,
    hooks: ConsumerHooks,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), IngestError> {
    let consumer: StreamConsumer<ConsumerHooks> =
        config.consumer_config().create_with_context(hooks.clone()).map_err(|e| IngestError::Source(std::io::Error::other(format!("kafka consumer: {e}"))))?;
    consumer
        .subscribe(&config.topic_names())
        .map_err(|e| IngestError::Source(std::io::Error::other(format!("subscribing to {:?}: {e}", config.topic_names()))))?;

    let mut ingestor = Ingestor::open(lake, &[], options.clone()).await?;
    let mut owned: HashMap<(String, i32), Owned> = HashMap::new();
    let mut buffers: BTreeMap<String, RawChunk> = BTreeMap::new();
    let mut buffered = 0usize;
    // Messages wait in `buffers` at most this long before they are decoded into the batch.
    // One timer, armed while anything waits (buffered, decoding or in the batch) and
    // ticking every `buffer_age` until nothing does, rather than a deadline per message:
    // at 100k messages a second, reading the clock per message was 4 % of the loop.
    let buffer_age = options.batch_max_age.min(Duration::from_millis(200));
    let tick = tokio::time::sleep(buffer_age);
    let mut tick_armed = false;
    // The chunks being decoded on a blocking thread while the loop receives the next ones;
    // taken into the batch, in order, before the next decode starts or the batch commits.
    let mut decoding: Option<Decoding> = None;
    let mut last_error_log: Option<Instant> = None;
    tokio::pin!(shutdown, tick);

    loop {
        let mut ticked = false;
        let mut message = tokio::select! {
            message = consumer.recv() => Some(message),
            () = &mut tick, if tick_armed => {
                ticked = true;
                None
            }
            () = &mut shutdown => break,
        };

        // Rebalances first: nothing may be committed for a partition we lost.
        let news = hooks.news.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default();
        if news.revoked || news.assigned.is_some() {
            // The message this `recv()` returned was fetched under the old assignment;
            // the seek below fetches it again if it is still ours. Keeping it would take
            // its offset twice.
            message = None;
            buffers.clear();
            buffered = 0;
            tick_armed = false;
            // Its lines are re-read after the seek, like the buffers'.
            drop(decoding.take());
            ingestor = Ingestor::open(lake, &[], options.clone()).await?;
            owned.clear();
            if let Some(assigned) = news.assigned {
                let parts: Vec<String> = assigned.iter().map(|(t, p)| part_id(&config.group_id, t, *p)).collect();
                ingestor.track(&parts).await?;
                let mut seeks = TopicPartitionList::new();
                for ((topic, partition), part) in assigned.into_iter().zip(parts) {
                    let start = ingestor.resume_after(&part).map_or(0, |p| p + 1);
                    let offset = if start == 0 { Offset::Beginning } else { Offset::Offset(start) };
                    let _ = seeks.add_partition_offset(&topic, partition, offset);
                    owned.insert((topic, partition), Owned { part, start });
                }
                // With a timeout, librdkafka guarantees that nothing fetched before the
                // seek is delivered after it. Without a successful seek, positions cannot
                // be trusted: stop, and let the restart begin cleanly from the lake.
                let sought = consumer
                    .seek_partitions(seeks, Duration::from_secs(10))
                    .map_err(|e| IngestError::Source(std::io::Error::other(format!("seeking to the lake's positions: {e}"))))?;
                if let Some(failed) = sought.elements().iter().find(|e| e.error().is_err()) {
                    return Err(IngestError::Source(std::io::Error::other(format!(
                        "seeking {}[{}] to the lake's position: {:?}",
                        failed.topic(),
                        failed.partition(),
                        failed.error()
                    ))));
                }
            }
        }

        match message {
            Some(Ok(message)) => {
                let key = (message.topic().to_owned(), message.partition());
                if let Some(owner) = owned.get(&key)
                    && message.offset() >= owner.start
                {
                    let chunk = buffers.entry(owner.part.clone()).or_default();
                    chunk.push(message.payload().unwrap_or_default(), message.offset());
                    buffered += 1;
                    if !tick_armed {
                        tick_armed = true;
                        tick.as_mut().reset(Instant::now() + buffer_age);
                    }
                }
            }
            // librdkafka reconnects by itself; say so, at most every 10 s.
            Some(Err(error)) if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) => {
                tracing::warn!(%error, "kafka: retrying");
                last_error_log = Some(Instant::now());
            }
            Some(Err(_)) | None => {}
        }

        if ticked || (buffered > 0 && ingestor.batch_is_due()) || buffered >= CHUNK_LINES {
            take_decoded(&mut ingestor, decoding.take()).await?;
            if buffered > 0 {
                let limits = options.limits;
                let chunks = std::mem::take(&mut buffers);
                buffered = 0;
                decoding =
                    Some(tokio::task::spawn_blocking(move || chunks.into_iter().map(|(part, raw)| (part, DecodedChunk::decode(raw, &limits))).collect()));
            }
        }
        if ingestor.batch_is_due() {
            take_decoded(&mut ingestor, decoding.take()).await?;
            ingestor.commit().await?;
            commit_offsets(&consumer, &owned, &ingestor);
        }
        if ticked {
            tick_armed = buffered > 0 || decoding.is_some() || ingestor.has_pending_lines();
            tick.as_mut().reset(Instant::now() + buffer_age);
        }
    }
    Ok(())
}

/// Waits for the chunks being decoded (if any) and takes them into the batch.
async fn take_decoded(ingestor: &mut Ingestor, decoding: Option<Decoding>) -> Result<(), IngestError> {
    let Some(decoding) = decoding else { return Ok(()) };
    let decoded = decoding.await.map_err(|e| IngestError::Source(std::io::Error::other(format!("decoding: {e}"))))?;
    for (part, chunk) in &decoded {
        drop(ingestor.take(part, chunk));
    }
    Ok(())
}

/// Tells Kafka how far the lake is, for lag tools. Asynchronous and best effort: the
/// lake, not Kafka, is what the loop resumes from.
fn commit_offsets(consumer: &StreamConsumer<ConsumerHooks>, owned: &HashMap<(String, i32), Owned>, ingestor: &Ingestor) {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), owner) in owned {
        if let Some(position) = ingestor.resume_after(&owner.part) {
            let _ = offsets.add_partition_offset(topic, *partition, Offset::Offset(position + 1));
        }
    }
    if offsets.count() > 0
        && let Err(e) = consumer.commit(&offsets, CommitMode::Async)
    {
        tracing::debug!(error = %e, "committing offsets to Kafka (informational) failed");
    }
}
