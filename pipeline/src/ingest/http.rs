//! Ingest for sources that wait for an answer: HTTP requests are grouped, committed to
//! the lake together (group commit), and only then answered, line by line.
//!
//! An HTTP client cannot be replayed by us, so an acknowledgement must mean "durable":
//! the answer is sent after the Delta commit that holds the request's lines. A request
//! whose commit fails gets an error and nothing it sent is remembered as seen, so its
//! retry is accepted; a request answered successfully and retried (say, after a client
//! time-out) finds its events in the dedup window and gets `duplicate` for them.
//!
//! Positions are line numbers over all requests of this source; they only keep the
//! source's `txn` versions increasing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{DecodedChunk, IngestOptions, Ingestor, LineOutcome};
use crate::lake::{Lake, LakeError};
use crate::model::Rejection;
use crate::source::RawChunk;

/// One request's body waiting for the next group commit.
struct Submission {
    body: Vec<u8>,
    /// `application/json`: the whole body is one event, even across lines.
    single: bool,
    /// Already refused (a carrier payload its adapter could not read): the whole body
    /// goes to quarantine as one line, with this reason.
    refused: Option<Rejection>,
    reply: oneshot::Sender<Result<Vec<LineOutcome>, String>>,
}

impl Submission {
    fn lines(&self) -> Vec<&[u8]> {
        split_lines(&self.body, self.single || self.refused.is_some())
    }
}

/// Why a submission got no per-line answer.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue of requests waiting for a commit is full: retry later (HTTP 429).
    #[error("ingest is behind; retry after a moment")]
    Overloaded,
    /// The commit failed; nothing of the request was kept (HTTP 503).
    #[error("the lake commit failed: {0}")]
    CommitFailed(String),
    /// The ingest loop is not running.
    #[error("ingest is not running")]
    Stopped,
}

/// The API's handle on the group-commit loop. Cheap to clone.
#[derive(Clone)]
pub struct HttpIngest {
    tx: mpsc::Sender<Submission>,
    /// Set by the loop while it can take requests (its dedup window is rebuilt).
    ready: Arc<AtomicBool>,
}

/// Whether `POST /v1/events` is answered now (`/healthz`, `/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Rebuilding the dedup window from the lake (after a start or a failed commit):
    /// requests wait in the queue until it is done.
    Starting,
    Ready,
    /// The loop has ended; requests get 503.
    Stopped,
}

impl HttpIngest {
    /// A handle and the receiving end for [`run_group_commits`]. `queue` bounds how many
    /// requests may wait for a commit; beyond it, submissions are refused as overloaded
    /// rather than buffered.
    pub fn channel(queue: usize) -> (HttpIngest, GroupCommitQueue) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let ready = Arc::new(AtomicBool::new(false));
        (HttpIngest { tx, ready: ready.clone() }, GroupCommitQueue { rx, ready })
    }

    /// Whether a request sent now is taken at once, waits for the loop to start, or
    /// is refused. A load balancer should send events only once this is `Ready`: after
    /// a restart over a lake with many recent ids the rebuild takes seconds.
    pub fn readiness(&self) -> Readiness {
        if self.tx.is_closed() {
            Readiness::Stopped
        } else if self.ready.load(Ordering::Acquire) {
            Readiness::Ready
        } else {
            Readiness::Starting
        }
    }

    /// Submits a body and waits until its lines are committed.
    pub async fn submit(&self, body: Vec<u8>, single: bool) -> Result<Vec<LineOutcome>, SubmitError> {
        self.send(Submission { body, single, refused: None, reply: oneshot::channel().0 }).await
    }

    /// Quarantines a refused payload (kept whole, with its reason) and waits until that
    /// is committed.
    pub async fn submit_refused(&self, body: Vec<u8>, rejection: Rejection) -> Result<Vec<LineOutcome>, SubmitError> {
        self.send(Submission { body, single: true, refused: Some(rejection), reply: oneshot::channel().0 }).await
    }

    async fn send(&self, mut submission: Submission) -> Result<Vec<LineOutcome>, SubmitError> {
        let (reply, answer) = oneshot::channel();
        submission.reply = reply;
        self.tx.try_send(submission).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })?;
        answer.await.map_err(|_| SubmitError::Stopped)?.map_err(SubmitError::CommitFailed)
    }
}

/// Requests waiting for their group commit, and the loop's side of its readiness.
pub struct GroupCommitQueue {
    rx: mpsc::Receiver<Submission>,
    ready: Arc<AtomicBool>,
}

/// Splits a body into lines: NDJSON by newline (a final newline ends the last line, it
/// does not start another), or the whole body for a single JSON event.
pub fn split_lines(body: &[u8], single: bool) -> Vec<&[u8]> {
    if single {
        return vec![body];
    }
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|b| *b == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line)).collect()
}

/// Runs the group-commit loop until every [`HttpIngest`] handle is gone: waits for a
/// request, gathers more for up to `window` (or `options.batch_max_events` lines),
/// decodes, deduplicates, commits, and answers each request with its lines' outcomes.
pub async fn run_group_commits(
    lake: Lake,
    source_id: String,
    options: IngestOptions,
    window: Duration,
    GroupCommitQueue { mut rx, ready }: GroupCommitQueue,
) -> Result<(), LakeError> {
    let parts = [source_id.clone()];
    let mut ingestor = Ingestor::open(&lake, &parts, options.clone()).await?;
    ready.store(true, Ordering::Release);
    let mut position = ingestor.resume_after(&source_id).unwrap_or(0);
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut lines = group[0].lines().len();
        let deadline = Instant::now() + window;
        while lines < options.batch_max_events {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => {
                    lines += next.lines().len();
                    group.push(next);
                }
                _ => break,
            }
        }

        let mut chunk = RawChunk::default();
        let mut counts = Vec::with_capacity(group.len());
        let mut refused = Vec::new();
        for submission in &group {
            let request_lines = submission.lines();
            counts.push(request_lines.len());
            if let Some(rejection) = &submission.refused {
                refused.push((chunk.lines.len(), rejection.clone()));
            }
            for line in request_lines {
                position += 1;
                chunk.push(line, position);
            }
        }
        let limits = options.limits;
        let mut decoded = tokio::task::spawn_blocking(move || DecodedChunk::decode(chunk, &limits))
            .await
            .map_err(|e| LakeError::Other { what: "the decode task", message: e.to_string() })?;
        for (index, rejection) in refused {
            decoded.outcomes[index] = Err(rejection);
        }
        let mut outcomes = ingestor.take(&source_id, &decoded).into_iter();

        match ingestor.commit().await {
            Ok(()) => {
                for (submission, count) in group.into_iter().zip(counts) {
                    let _ = submission.reply.send(Ok(outcomes.by_ref().take(count).collect()));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = group.len(), "group commit failed; the requests get an error");
                for submission in group {
                    let _ = submission.reply.send(Err(error.to_string()));
                }
                // The failed batch's ids were remembered as seen; reopen so the dedup
                // window and positions are the lake's again, and retries are accepted.
                ready.store(false, Ordering::Release);
                ingestor = Ingestor::open(&lake, &parts, options.clone()).await?;
                ready.store(true, Ordering::Release);
                position = position.max(ingestor.resume_after(&source_id).unwrap_or(0));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_loop() {
        let (ingest, queue) = HttpIngest::channel(1);
        assert_eq!(ingest.readiness(), Readiness::Starting);
        queue.ready.store(true, Ordering::Release);
        assert_eq!(ingest.readiness(), Readiness::Ready);
        drop(queue);
        assert_eq!(ingest.readiness(), Readiness::Stopped);
    }

    #[test]
    fn bodies_split_into_lines() {
        let cases: [(&[u8], bool, Vec<&[u8]>); 5] = [
            (b"a\nb\n", false, vec![b"a", b"b"]),
            (b"a\r\nb", false, vec![b"a", b"b"]),
            (b"a\n\nb\n", false, vec![b"a", b"", b"b"]),
            (b"{\n \"a\": 1\n}", true, vec![b"{\n \"a\": 1\n}"]),
            (b"", false, vec![b""]),
        ];
        for (body, single, expected) in cases {
            assert_eq!(split_lines(body, single), expected, "{:?}", String::from_utf8_lossy(body));
        }
    }
}
