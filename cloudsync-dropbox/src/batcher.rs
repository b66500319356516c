//! Commits of small files in batches: `files/upload_session/finish_batch_v2`.
//!
//! Each write uploads its content into its own closed upload session, then hands the commit
//! here and waits. A batch is committed when it holds `batch_size` files or when its first file
//! has waited `batch_timeout`; every write then gets its own file's result. One commit per batch
//! instead of one per file keeps accounts clear of `too_many_write_operations`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudsync_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::core::{DropboxCore, attach_tags, classify_409, tag_chain};

const ENDPOINT: &str = "files/upload_session/finish_batch_v2";

type Waiter = oneshot::Sender<Result<Value>>;

#[derive(Default)]
struct Pending {
    entries: Vec<(Value, Waiter)>,
    /// Increases with every batch taken, so a timer only flushes the batch it was set for.
    generation: u64,
}

/// Collects commits into batches.
pub(crate) struct Batcher {
    max: usize,
    timeout: Duration,
    pending: Mutex<Pending>,
    /// Held while a batch is being committed: one commit at a time per remote. files.stone,
    /// route upload_session/finish_batch: "For the same account, this route should be
    /// executed serially. That means you should not start the next job before current job
    /// finishes." (rclone's Dropbox batcher, likewise, commits one batch at a time.) A second
    /// commit would meet the first one's lock on the namespace: `too_many_write_operations`.
    committing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("max", &self.max)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One entry of the batch's answer.
#[derive(Deserialize)]
struct BatchResult {
    entries: Vec<Value>,
}

impl Batcher {
    pub(crate) fn new(max: usize, timeout: Duration) -> Self {
        Batcher {
            max,
            timeout,
            pending: Mutex::new(Pending::default()),
            committing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(p: &mut Pending) -> Vec<(Value, Waiter)> {
        p.generation += 1;
        std::mem::take(&mut p.entries)
    }

    /// Commits the closed session described by `finish_arg` (an `UploadSessionFinishArg`)
    /// with the next batch; returns the file's metadata.
    pub(crate) async fn commit(core: &Arc<DropboxCore>, finish_arg: Value) -> Result<Value> {
        let Some(batcher) = core.batcher.as_ref() else {
            return Err(Error::new(ErrorKind::Unexpected, "batching is off"));
        };
        let (tx, rx) = oneshot::channel();
        let (full, timer) = {
            let mut p = batcher.lock();
            p.entries.push((finish_arg, tx));
            if p.entries.len() >= batcher.max {
                (Some(Self::take(&mut p)), None)
            } else if p.entries.len() == 1 {
                (None, Some(p.generation))
            } else {
                (None, None)
            }
        };
        if let Some(batch) = full {
            tokio::spawn(flush(core.clone(), batch));
        }
        if let Some(generation) = timer {
            let core = core.clone();
            let timeout = batcher.timeout;
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                let Some(b) = core.batcher.as_ref() else {
                    return;
                };
                let batch = {
                    let mut p = b.lock();
                    if p.generation != generation || p.entries.is_empty() {
                        return;
                    }
                    Self::take(&mut p)
                };
                flush(core.clone(), batch).await;
            });
        }
        rx.await.map_err(|_| {
            Error::new(ErrorKind::Transient, "the batch commit was abandoned")
                .with_operation(ENDPOINT)
        })?
    }
}

/// A copy of `e` for each waiter of a failed batch.
fn copy_error(e: &Error) -> Error {
    let mut c = Error::new(e.kind(), e.message().to_owned())
        .with_operation(ENDPOINT)
        .set_temporary(e.is_retryable());
    if let Some(r) = e.retry_after() {
        c = c.with_retry_after(r);
    }
    c
}

/// Sends one batch and hands each waiter its result.
async fn flush(core: Arc<DropboxCore>, batch: Vec<(Value, Waiter)>) {
    let (args, waiters): (Vec<Value>, Vec<Waiter>) = batch.into_iter().unzip();
    let _one_at_a_time = match core.batcher.as_ref() {
        Some(b) => Some(b.committing.lock().await),
        None => None,
    };
    tracing::debug!(files = args.len(), "committing an upload batch");
    let answer = core
        .rpc(ENDPOINT, &json!({ "entries": args }))
        .await
        .and_then(|v| {
            serde_json::from_value::<BatchResult>(v).map_err(|e| {
                Error::new(ErrorKind::Protocol, format!("malformed batch answer: {e}"))
                    .with_operation(ENDPOINT)
            })
        });
    let entries = match answer {
        Ok(r) if r.entries.len() == waiters.len() => r.entries,
        Ok(r) => {
            let e = Error::new(
                ErrorKind::Protocol,
                format!(
                    "the batch answer has {} entries for {} files",
                    r.entries.len(),
                    waiters.len()
                ),
            );
            for w in waiters {
                let _ = w.send(Err(copy_error(&e)));
            }
            return;
        }
        Err(e) => {
            for w in waiters {
                let _ = w.send(Err(copy_error(&e)));
            }
            return;
        }
    };
    for (entry, w) in entries.into_iter().zip(waiters) {
        let _ = w.send(entry_result(entry));
    }
}

/// One entry of a batch answer: `{".tag": "success", ...file metadata}` or
/// `{".tag": "failure", "failure": UploadSessionFinishError}`.
fn entry_result(mut entry: Value) -> Result<Value> {
    match entry.get(".tag").and_then(Value::as_str) {
        Some("success") => {
            entry[".tag"] = Value::String("file".to_owned());
            Ok(entry)
        }
        Some("failure") => {
            let failure = entry.get("failure").cloned().unwrap_or(Value::Null);
            let tags = tag_chain(&failure);
            let msg = format!("{ENDPOINT}: {}/..", tags.join("/"));
            Err(attach_tags(classify_409(&tags, msg, None), &tags).with_operation(ENDPOINT))
        }
        _ => Err(Error::new(ErrorKind::Protocol, "malformed batch entry").with_operation(ENDPOINT)),
    }
}
