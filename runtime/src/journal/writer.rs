//! The task that writes queued rows in batches and keeps the journal within its bounds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Journal, Record, now_ms};

/// Rows written in one batch at most.
const BATCH: usize = 256;
/// How long one store call may take before its batch counts as failed.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds are enforced once the queue is drained, and at least every this many rows.
const TRIM_ROWS: u64 = 1000;

pub(super) async fn run(journal: Journal, mut receiver: tokio::sync::mpsc::Receiver<Record>) {
    let inner = &*journal.inner;
    let mut batch = Vec::with_capacity(BATCH);
    let mut since_trim = 0u64;
    let trim_rows = (inner.options.max_rows / 4).clamp(1, TRIM_ROWS);
    let mut last_warning: Option<Instant> = None;
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
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
        if since_trim >= trim_rows || (since_trim > 0 && receiver.is_empty()) {
            let max_age = i64::try_from(inner.options.max_age.as_millis()).unwrap_or(i64::MAX);
            let trimmed = tokio::time::timeout(
                TIMEOUT,
                inner
                    .store
                    .trim(inner.options.max_rows, now_ms().saturating_sub(max_age)),
            )
            .await;
            if let Ok(Err(e)) = trimmed {
                tracing::warn!(error = %e, "journal could not be trimmed");
            }
            // Counted once within bounds, so whoever sees the count sees a trimmed journal.
            inner.written.fetch_add(since_trim, Ordering::Relaxed);
            since_trim = 0;
        }
    }
}
