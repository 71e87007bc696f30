//! The task that writes queued rows in batches and keeps the journal within its bounds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Journal, Record};
use crate::clock::now_ms;

/// Rows written in one batch at most.
const BATCH: usize = 256;
/// How long one store call may take before its batch counts as failed.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds are enforced at least every this many rows...
const TRIM_ROWS: u64 = 1000;
/// ...and once the queue has stayed empty this long after rows were written. Trimming whenever
/// the queue ran dry deleted a row or two per delivery under a steady load: on `SQLite` that
/// dirtied the far end of the table and both indexes in every commit.
const TRIM_IDLE: Duration = Duration::from_millis(250);

pub(super) async fn run(journal: Journal, mut receiver: tokio::sync::mpsc::Receiver<Record>) {
    let inner = &*journal.inner;
    let mut batch = Vec::with_capacity(BATCH);
    let mut since_trim = 0u64;
    let trim_rows = (inner.options.max_rows / 4).clamp(1, TRIM_ROWS);
    let mut last_warning: Option<Instant> = None;
    loop {
        let got = if since_trim == 0 {
            receiver.recv_many(&mut batch, BATCH).await
        } else {
            // `recv_many` is cancel-safe: rows that arrive as the time runs out stay queued.
            match tokio::time::timeout(TRIM_IDLE, receiver.recv_many(&mut batch, BATCH)).await {
                Ok(got) => got,
                Err(_idle) => {
                    trim(&journal, &mut since_trim).await;
                    continue;
                }
            }
        };
        if got == 0 {
            // Closed: the last rows are trimmed before the task ends.
            if since_trim > 0 {
                trim(&journal, &mut since_trim).await;
            }
            return;
        }
        let n = batch.len() as u64;
        match tokio::time::timeout(TIMEOUT, inner.store.insert(std::mem::take(&mut batch))).await {
            Ok(Ok(())) => since_trim += n,
            failed => {
                inner.failed.fetch_add(n, Ordering::Relaxed);
                ::metrics::counter!("replicate_webhook_journal_failed_total").increment(n);
                // A store that is down fails every batch: say so once a minute, not each time.
                if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_mins(1)) {
                    last_warning = Some(Instant::now());
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} s", TIMEOUT.as_secs()),
                    };
                    tracing::warn!(error, rows = n, "journal rows lost; deliveries go on");
                }
            }
        }
        if since_trim >= trim_rows {
            trim(&journal, &mut since_trim).await;
        }
    }
}

/// Enforces the bounds, then counts the rows written since the last trim.
async fn trim(journal: &Journal, since_trim: &mut u64) {
    let inner = &*journal.inner;
    let trimmed = tokio::time::timeout(
        TIMEOUT,
        inner
            .store
            .trim(inner.options.max_rows, inner.options.cutoff_ms(now_ms())),
    )
    .await;
    if let Ok(Err(e)) = trimmed {
        tracing::warn!(error = %e, "journal could not be trimmed");
    }
    // Counted once within bounds, so whoever sees the count sees a trimmed journal.
    inner.written.fetch_add(*since_trim, Ordering::Relaxed);
    *since_trim = 0;
}
