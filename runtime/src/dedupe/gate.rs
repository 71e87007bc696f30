//! The dedupe protocol, with no HTTP in it: admit a delivery, then complete or release its lease.
//!
//! `service.rs` maps an [`Admission`] to a status code; the inbox runs the same protocol. Every
//! store call goes through [`Gate`], which bounds it with the policy's timeout, so a slow store is
//! a [`StoreError`] (503, Replicate retries) rather than a request that hangs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{Claim, ClaimToken, DedupeStore, ProgressMarkers, StoreError};
use crate::prediction::Status;

/// How long each piece of dedupe state lives, and how long a store call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a running handler keeps its claim before another worker may take over.
    pub lease: Duration,
    /// How long a handled `webhook-id` is remembered.
    pub webhook_ttl: Duration,
    /// How long a prediction's handled terminal status is remembered.
    pub terminal_ttl: Duration,
    /// How long the last output seen for a running prediction is remembered.
    pub progress_ttl: Duration,
    /// The longest a single store call may take before the delivery is refused with 503.
    pub timeout: Duration,
}

impl Policy {
    /// The defaults README documents: a 30 s lease, a `webhook-id` remembered for 24 h, a
    /// terminal status for 7 days, progress for 24 h, and 2 s for one store call.
    pub const DEFAULT: Self = Self {
        lease: Duration::from_secs(30),
        webhook_ttl: Duration::from_hours(24),
        terminal_ttl: Duration::from_hours(168),
        progress_ttl: Duration::from_hours(24),
        timeout: Duration::from_secs(2),
    };
}

impl Default for Policy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the gate needs to know of a verified delivery.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The `webhook-id` header: the same on every retry of one delivery.
    pub webhook_id: &'a str,
    /// The prediction's id.
    pub prediction_id: &'a str,
    /// The prediction's status in this delivery.
    pub status: &'a Status,
}

/// Whether a delivery may run its handler: the one answer of admission, inline and inbox alike.
#[derive(Debug)]
pub enum Admission {
    /// Run the handler, then [`Gate::complete`] or [`Gate::release`] the lease.
    Run(Lease),
    /// Admitted and stored as inbox job `N`, which holds the delivery's keys until it is done.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "testkit")),
        allow(dead_code, reason = "only a SQL inbox stores jobs")
    )]
    Stored(i64),
    /// This `webhook-id` was already handled (or is stored as a job).
    Duplicate,
    /// Another delivery already handled a terminal status of this prediction: the first
    /// terminal status handled wins, later ones (the same or another) are not dispatched.
    AlreadyHandled,
    /// An intermediate event of a prediction that already finished.
    Stale,
    /// Another worker is handling this delivery or status right now.
    InFlight {
        /// Time left on that worker's lease.
        retry_after: Duration,
    },
}

/// The claim a running handler (or a stored job) holds: its delivery's one dedupe key.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    token: ClaimToken,
    /// Whether `key` is the prediction's terminal key (remembered for the terminal TTL).
    terminal: bool,
}

impl Lease {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    /// The claim a stored job holds: its key, under the token it was stored with.
    pub(crate) fn of_job(keys: Keys, token: &ClaimToken) -> Self {
        Self {
            key: keys.claimed,
            token: token.clone(),
            terminal: keys.is_terminal,
        }
    }

    /// The claim, with how long its key stays done once handled: what the gate completes, and
    /// what the SQL engines complete inside their own transactions.
    pub(crate) fn held(&self, ttls: Ttls) -> (&str, &ClaimToken, Duration) {
        let ttl = if self.terminal {
            ttls.terminal
        } else {
            ttls.webhook
        };
        (&self.key, &self.token, ttl)
    }
}

/// The store keys of one delivery. This is the only place that spells them: a delivery must
/// find the same keys whether it runs inline or through the inbox, or it could run twice.
///
/// A delivery claims one key. A terminal status claims `prediction:<id>:terminal`, which the
/// first terminal status handled keeps done: that alone absorbs Replicate's retries of it (and
/// the same result under another `webhook-id`), so its `webhook-id` is not stored as well. An
/// intermediate event claims `webhook:<id>`, which absorbs the retries of one delivery, and
/// reads the terminal key to tell whether the prediction already finished.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The key this delivery claims.
    claimed: String,
    /// `prediction:<id>:terminal`: read by an intermediate event.
    terminal: String,
    is_terminal: bool,
}

impl Keys {
    pub(crate) fn of(delivery: Delivery<'_>) -> Self {
        let terminal = terminal_key(delivery.prediction_id);
        let is_terminal = delivery.status.is_terminal();
        Self {
            claimed: if is_terminal {
                terminal.clone()
            } else {
                ["webhook:", delivery.webhook_id].concat()
            },
            terminal,
            is_terminal,
        }
    }
}

/// The key primitives admission runs on: a [`DedupeStore`] through [`Gate`], or one SQL engine's
/// transaction when the inbox stores a job beside its claims.
pub(crate) trait Claims {
    /// Whether the calls run inside one transaction that the caller rolls back on an error:
    /// they may then be issued together (pipelined), and a failed admission undoes nothing.
    fn in_transaction(&self) -> bool {
        false
    }

    /// Claims `key` for `lease` (see [`DedupeStore::claim`]).
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError>;

    /// Marks a claimed key done for `ttl` (see [`DedupeStore::complete`]).
    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Drops a claim (see [`DedupeStore::release`]).
    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError>;

    /// Whether `key` is done (see [`DedupeStore::is_done`]).
    async fn is_done(&self, key: &str) -> Result<bool, StoreError>;
}

/// How long handled keys stay done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttls {
    pub(crate) webhook: Duration,
    pub(crate) terminal: Duration,
}

impl From<&Policy> for Ttls {
    fn from(policy: &Policy) -> Self {
        Self {
            webhook: policy.webhook_ttl,
            terminal: policy.terminal_ttl,
        }
    }
}

/// The admission rules: a terminal status claims the prediction's terminal key; an intermediate
/// event claims its `webhook-id`, and is stale once the prediction finished. A stale event settles
/// its `webhook-id` as done (that will never change); a claim taken before an error is undone.
pub(crate) async fn admit<C: Claims>(
    claims: &C,
    keys: &Keys,
    lease: Duration,
    webhook_ttl: Duration,
) -> Result<Admission, StoreError> {
    let run = |token| {
        Admission::Run(Lease {
            key: keys.claimed.clone(),
            token,
            terminal: keys.is_terminal,
        })
    };
    if keys.is_terminal {
        return Ok(match claims.claim(&keys.claimed, lease).await? {
            Claim::Acquired(token) => run(token),
            Claim::Done => Admission::AlreadyHandled,
            Claim::InFlight { retry_after } => Admission::InFlight { retry_after },
        });
    }
    // In a transaction both are asked at once (one round trip); a store is asked whether the
    // prediction finished only once the webhook-id is ours, so a duplicate costs one call.
    let (claim, finished) = if claims.in_transaction() {
        let (claim, finished) = tokio::join!(
            claims.claim(&keys.claimed, lease),
            claims.is_done(&keys.terminal)
        );
        (claim?, Some(finished))
    } else {
        (claims.claim(&keys.claimed, lease).await?, None)
    };
    let token = match claim {
        Claim::Acquired(token) => token,
        Claim::InFlight { retry_after } => return Ok(Admission::InFlight { retry_after }),
        Claim::Done => return Ok(Admission::Duplicate),
    };
    let finished = match finished {
        Some(finished) => finished,
        None => claims.is_done(&keys.terminal).await,
    };
    match finished {
        Ok(false) => Ok(run(token)),
        Ok(true) => {
            claims.complete(&keys.claimed, &token, webhook_ttl).await?;
            Ok(Admission::Stale)
        }
        Err(e) => {
            release_quietly(claims, &keys.claimed, &token).await;
            Err(e)
        }
    }
}

async fn release_quietly<C: Claims>(claims: &C, key: &str, token: &ClaimToken) {
    if let Err(e) = claims.release(key, token).await {
        tracing::warn!(error = %e, "could not release a dedupe claim; it expires with its lease");
    }
}

/// What [`Gate::observe`] found of a `processing` delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Its output differs from the last one seen: an `output` event.
    Output(OutputUndo),
    /// The same output, more logs or the same: a `logs` event.
    Logs(OutputUndo),
    /// Less output or fewer logs than already seen: an older delivery arriving late.
    Regressed,
}

/// What [`Gate::observe`] changed, to undo when the delivery is not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputUndo {
    previous: Option<u64>,
    current: u64,
}

/// What is remembered of a prediction's progress, in one `u64` so every store can swap it
/// atomically: the length of its logs (20 bits), the length of its output (20 bits), and 24 bits
/// of a hash of the output. Lengths saturate at 1 MiB; past that only the hash tells outputs apart
/// and regressions go unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark(u64);

impl Mark {
    const LEN_BITS: u32 = 20;
    const HASH_BITS: u32 = 24;
    const LEN_MAX: u64 = (1 << Self::LEN_BITS) - 1;

    fn new(output: &str, logs_len: usize) -> Self {
        let digest = Sha256::digest(output.as_bytes());
        let hash = u64::from(digest[0]) << 16 | u64::from(digest[1]) << 8 | u64::from(digest[2]);
        let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX).min(Self::LEN_MAX);
        Self(
            len(logs_len) << (Self::LEN_BITS + Self::HASH_BITS)
                | len(output.len()) << Self::HASH_BITS
                | hash,
        )
    }

    fn logs_len(self) -> u64 {
        self.0 >> (Self::LEN_BITS + Self::HASH_BITS)
    }

    fn output_len(self) -> u64 {
        (self.0 >> Self::HASH_BITS) & Self::LEN_MAX
    }

    fn output(self) -> u64 {
        self.0 & ((1 << (Self::LEN_BITS + Self::HASH_BITS)) - 1)
    }
}

/// The dedupe protocol over one store.
#[derive(Clone)]
pub struct Gate {
    store: Arc<dyn DedupeStore>,
    /// The store's own, or this process's when the store keeps none.
    markers: Arc<dyn ProgressMarkers>,
    policy: Policy,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate over `store` with `policy`.
    pub fn new(store: Arc<dyn DedupeStore>, policy: Policy) -> Self {
        let markers = Arc::clone(&store).markers().unwrap_or_else(|| {
            tracing::info!(
                "the dedupe store keeps no progress markers: output and logs deliveries are told \
                 apart by this process alone, not across instances"
            );
            Arc::new(super::MemoryStore::new())
        });
        Self {
            store,
            markers,
            policy,
        }
    }

    /// Claims what a delivery needs to run: for a terminal status the prediction's terminal key,
    /// for an intermediate event its `webhook-id` (stale once the prediction finished). A claim
    /// taken before an error is undone.
    pub async fn admit(&self, delivery: Delivery<'_>) -> Result<Admission, StoreError> {
        admit(
            self,
            &Keys::of(delivery),
            self.policy.lease,
            self.policy.webhook_ttl,
        )
        .await
    }

    /// Records a handled delivery. Until this succeeds a retry may run the handler again
    /// (at-least-once, never at-most-once).
    pub async fn complete(&self, lease: &Lease) -> Result<(), StoreError> {
        let (key, token, ttl) = lease.held(Ttls::from(&self.policy));
        Claims::complete(self, key, token, ttl).await
    }

    /// Gives the lease up so a retry can run the handler. Failures are logged, not returned:
    /// the lease then expires on its own and the retry waits for it at worst.
    pub async fn release(&self, lease: &Lease) {
        release_quietly(self, &lease.key, &lease.token).await;
    }

    /// Records that a prediction reached a terminal status no handler takes: it is finished,
    /// so its later intermediate deliveries are stale and later terminal ones not dispatched.
    pub async fn finish_unhandled(&self, prediction_id: &str) -> Result<(), StoreError> {
        let terminal = terminal_key(prediction_id);
        self.call(self.store.mark_done(&terminal, self.policy.terminal_ttl))
            .await
    }

    /// Records the progress of a `processing` delivery (its output, `None` or `null` when it has
    /// none yet, and the length of its logs, decoded: what the body decodes to, not its JSON
    /// escapes) and classifies it against the last one any instance saw for the prediction.
    pub async fn observe(
        &self,
        prediction_id: &str,
        output: Option<&str>,
        logs_len: usize,
    ) -> Result<Progress, StoreError> {
        let output = output.filter(|o| *o != "null");
        let current = Mark::new(output.unwrap_or_default(), logs_len);
        let marker = progress_key(prediction_id);
        let previous = self
            .call(
                self.markers
                    .swap_marker(&marker, current.0, self.policy.progress_ttl),
            )
            .await?
            .map(Mark);
        let undo = OutputUndo {
            previous: previous.map(|m| m.0),
            current: current.0,
        };
        if let Some(previous) = previous
            && (previous.logs_len() > current.logs_len()
                || previous.output_len() > current.output_len())
        {
            self.undo_output(prediction_id, undo).await;
            return Ok(Progress::Regressed);
        }
        let changed = previous.is_none_or(|p| p.output() != current.output());
        Ok(if output.is_some() && changed {
            Progress::Output(undo)
        } else {
            Progress::Logs(undo)
        })
    }

    /// Undoes [`Gate::observe`] for a delivery that was not acknowledged, so its retry is
    /// classified as it was; a later delivery's progress is left alone.
    pub async fn undo_output(&self, prediction_id: &str, undo: OutputUndo) {
        let marker = progress_key(prediction_id);
        let restored = self.markers.restore_marker(
            &marker,
            undo.current,
            undo.previous,
            self.policy.progress_ttl,
        );
        if let Err(e) = self.call(restored).await {
            tracing::warn!(error = %e, "could not undo an output marker");
        }
    }

    async fn call<T>(
        &self,
        future: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.store.answers_at_once() {
            return future.await;
        }
        bounded(self.policy.timeout, future).await
    }
}

impl Claims for Gate {
    /// Claims `key` within the store timeout.
    ///
    /// A claim whose answer comes too late may still have been taken by the store. Dropping it
    /// would leave the key held, for a whole lease, by a delivery that never ran, and the
    /// sender's retries would be answered 409 until then. So the late claim is left to finish,
    /// and released as soon as the store answers.
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim, StoreError> {
        if self.store.answers_at_once() {
            return self.store.claim(key, lease).await;
        }
        let (store, key) = (Arc::clone(&self.store), key.to_owned());
        let mut claim = Box::pin(async move {
            let claim = store.claim(&key, lease).await;
            (store, key, claim)
        });
        if let Ok((_, _, claim)) = tokio::time::timeout(self.policy.timeout, &mut claim).await {
            return claim;
        }
        tokio::spawn(async move {
            let (store, key, claim) = claim.await;
            if let Ok(Claim::Acquired(token)) = claim {
                if let Ok(Ok(())) = tokio::time::timeout(lease, store.release(&key, &token)).await {
                    tracing::info!("released a claim the store granted too late");
                } else {
                    tracing::warn!(
                        "could not release a claim the store granted too late; it expires with its lease"
                    );
                }
            }
        });
        Err(timed_out(self.policy.timeout))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.call(self.store.complete(key, token, ttl)).await
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), StoreError> {
        self.call(self.store.release(key, token)).await
    }

    async fn is_done(&self, key: &str) -> Result<bool, StoreError> {
        self.call(self.store.is_done(key)).await
    }
}

/// Bounds a store call by `timeout`: a store that does not answer is a [`StoreError`] (503,
/// Replicate retries) rather than a delivery that hangs. Every store call goes through this.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout)))
}

fn timed_out(timeout: Duration) -> StoreError {
    StoreError::new(format_args!("no answer within {} ms", timeout.as_millis()))
}

/// The key of a prediction's last seen progress (a marker, in its own namespace).
fn progress_key(prediction_id: &str) -> String {
    ["prediction:", prediction_id, ":progress"].concat()
}

/// The key every terminal status of a prediction claims: the first one handled wins.
fn terminal_key(prediction_id: &str) -> String {
    ["prediction:", prediction_id, ":terminal"].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_keep_lengths_and_tell_outputs_apart() {
        let a = Mark::new("[1]", 10);
        assert_eq!((a.logs_len(), a.output_len()), (10, 3));
        let b = Mark::new("[2]", 10);
        assert_ne!(a.output(), b.output());
        assert_eq!(
            Mark::new("[1]", 99).output(),
            a.output(),
            "logs do not change the output"
        );
        let huge = Mark::new("x", 5 << 20);
        assert_eq!(huge.logs_len(), Mark::LEN_MAX);
        assert_eq!(huge.output_len(), 1);
    }
}
