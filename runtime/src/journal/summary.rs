//! The overview's figures, computed from the journal's rows of the last hour.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Outcome, Record};

/// What the journal says about the last hour.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Rows looked at.
    pub deliveries: u64,
    /// Per minute (milliseconds since the epoch, the minute's start), oldest first: counts by
    /// outcome.
    pub per_minute: Vec<Minute>,
    /// Counts by outcome.
    pub by_outcome: BTreeMap<String, u64>,
    /// Counts by model and event: `owner/name event`.
    pub by_model_event: BTreeMap<String, u64>,
    /// Handler run time, median, in milliseconds.
    pub handler_p50_ms: Option<f64>,
    /// Handler run time, 99th percentile, in milliseconds.
    pub handler_p99_ms: Option<f64>,
}

/// One minute of deliveries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Minute {
    /// The minute's start, in milliseconds since the epoch.
    pub at_ms: i64,
    /// Counts by outcome.
    pub by_outcome: BTreeMap<&'static str, u64>,
}

impl Summary {
    /// Summarizes `rows` (any order).
    pub fn of(rows: &[Record]) -> Self {
        let mut minutes: BTreeMap<i64, BTreeMap<&'static str, u64>> = BTreeMap::new();
        let mut by_outcome: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_model_event: BTreeMap<String, u64> = BTreeMap::new();
        let mut durations: Vec<i64> = Vec::new();
        for row in rows {
            let minute = row.received_ms - row.received_ms.rem_euclid(60_000);
            *minutes
                .entry(minute)
                .or_default()
                .entry(row.outcome.as_str())
                .or_default() += 1;
            *by_outcome
                .entry(row.outcome.as_str().to_owned())
                .or_default() += 1;
            let event = if row.event.is_empty() {
                "-"
            } else {
                &row.event
            };
            *by_model_event
                .entry(format!("{} {event}", row.model))
                .or_default() += 1;
            if let Some(us) = row.duration_us
                && matches!(row.outcome, Outcome::Ran | Outcome::HandlerError)
            {
                durations.push(us);
            }
        }
        durations.sort_unstable();
        Self {
            deliveries: rows.len() as u64,
            per_minute: minutes
                .into_iter()
                .map(|(at_ms, by_outcome)| Minute { at_ms, by_outcome })
                .collect(),
            by_outcome,
            by_model_event,
            handler_p50_ms: percentile(&durations, 50),
            handler_p99_ms: percentile(&durations, 99),
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted microseconds, in milliseconds.
#[allow(clippy::cast_precision_loss)]
fn percentile(sorted: &[i64], p: usize) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    Some(sorted[rank - 1] as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let us: Vec<i64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&us, 50), Some(50.0));
        assert_eq!(percentile(&us, 99), Some(99.0));
        assert_eq!(percentile(&[7000], 99), Some(7.0));
        assert_eq!(percentile(&[], 50), None);
    }
}
