//! The channel through PostgreSQL, so a subscriber on any instance sees what any instance
//! accepted.
//!
//! Two tables: `replicate_webhook_live_state` (a prediction's state and its last `seq`) and
//! `replicate_webhook_live_events` (the replay window, trimmed to the bound on every write). A
//! change is applied in Rust inside a transaction that locks the prediction's state row, and the
//! event is sent with `pg_notify` on commit; each instance holds one `LISTEN` connection that
//! hands events to its own subscribers. Rows carry an expiry (the retention) and reads skip
//! expired ones; a periodic delete removes them.
//!
//! This backend opens its own connections from the store URL, through the dedupe store's
//! connection helper: it shares configuration with the dedupe store, not its connections.

use std::sync::Weak;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::hub::Hub;
use super::state::{LiveEvent, State};
use super::store::{self, Listener, LiveStore};
use super::{Bounds, Change, LiveError};
use crate::dedupe::PostgresDb;
use crate::migrate::{Migrations, Step};

const NOT_LISTENING: &str = "postgres: the live listener is not listening";
const CHANNEL: &str = "replicate_webhook_live";
/// `pg_notify` payloads must stay under 8,000 bytes: a larger event is announced by number and
/// read from the table by the listener.
const MAX_PAYLOAD: usize = 7_000;
/// Writes between two deletes of expired rows.
const PURGE_EVERY: usize = 256;

const MIGRATIONS: Migrations = Migrations {
    part: "live",
    steps: &[Step::Sql(
        "
CREATE TABLE IF NOT EXISTS replicate_webhook_live_state (
    prediction_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS replicate_webhook_live_events (
    prediction_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    terminal BOOLEAN NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (prediction_id, seq)
);
",
    )],
};

pub(crate) struct PostgresLive {
    url: String,
    db: PostgresDb,
    bounds: Bounds,
    listener: Listener,
    writes: AtomicUsize,
}

/// What a notification carries: the whole event, or only its number when it is too large.
#[derive(serde::Serialize, serde::Deserialize)]
struct Notice {
    id: String,
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<LiveEvent>,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(db_error)`
fn db_error(e: impl std::fmt::Display) -> LiveError {
    LiveError::Store(format!("postgres: {e}"))
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl PostgresLive {
    pub(crate) fn open(url: &str, bounds: Bounds) -> Result<Self, LiveError> {
        let db = PostgresDb::new(url, 8, &[&MIGRATIONS], "live postgres")
            .map_err(|e| LiveError::Store(e.to_string()))?;
        Ok(Self {
            url: url.to_owned(),
            db,
            bounds,
            listener: Listener::new(NOT_LISTENING),
            writes: AtomicUsize::new(0),
        })
    }
}

#[async_trait::async_trait]
impl LiveStore for PostgresLive {
    fn listener(&self) -> &Listener {
        &self.listener
    }

    fn spawn_listener(&self, hub: Weak<Hub>, ready: watch::Sender<bool>) {
        tokio::spawn(listener(self.url.clone(), self.db.pool.clone(), hub, ready));
    }

    /// Applies `change` to the prediction's state under a row lock and notifies every instance.
    async fn publish(&self, change: &Change<'_>) -> Result<Option<LiveEvent>, LiveError> {
        let mut client = self.db.client_or(db_error, db_error).await?;
        let id = change.id();
        let retention = self.bounds.retention.as_secs_f64();
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO replicate_webhook_live_state (prediction_id, seq, state, expires_at)
             VALUES ($1, 0, '{}', now() + make_interval(secs => $2::float8)) ON CONFLICT (prediction_id) DO NOTHING",
            &[&id, &retention],
        )
        .await
        .map_err(db_error)?;
        let row = tx
            .query_one(
                "SELECT state, expires_at > now() FROM replicate_webhook_live_state
                 WHERE prediction_id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db_error)?;
        let live: bool = row.get(1);
        let mut state: State = if live {
            serde_json::from_str(row.get::<_, &str>(0)).unwrap_or_default()
        } else {
            State::default()
        };
        let Some(event) = change.apply(&mut state) else {
            return Ok(None);
        };
        let state_json = store::to_json(&state)?;
        let seq = seq_i64(event.seq);
        tx.execute(
            "UPDATE replicate_webhook_live_state SET seq = $2, state = $3,
             expires_at = now() + make_interval(secs => $4::float8) WHERE prediction_id = $1",
            &[&id, &seq, &state_json, &retention],
        )
        .await
        .map_err(db_error)?;
        tx.execute(
            "INSERT INTO replicate_webhook_live_events
             (prediction_id, seq, event, data, terminal, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::float8))
             ON CONFLICT (prediction_id, seq) DO UPDATE SET event = $3, data = $4,
             terminal = $5, expires_at = now() + make_interval(secs => $6::float8)",
            &[
                &id,
                &seq,
                &event.event,
                &event.data,
                &event.terminal,
                &retention,
            ],
        )
        .await
        .map_err(db_error)?;
        let keep = seq_i64(event.seq.saturating_sub(self.bounds.replay_events as u64));
        tx.execute(
            "DELETE FROM replicate_webhook_live_events WHERE prediction_id = $1 AND seq <= $2",
            &[&id, &keep],
        )
        .await
        .map_err(db_error)?;
        let mut notice = Notice {
            id: id.to_owned(),
            seq: event.seq,
            event: Some(event.clone()),
        };
        let mut payload = store::to_json(&notice)?;
        if payload.len() > MAX_PAYLOAD {
            notice.event = None;
            payload = store::to_json(&notice)?;
        }
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            let _ = client
                .batch_execute(
                    "DELETE FROM replicate_webhook_live_events WHERE expires_at < now();
                     DELETE FROM replicate_webhook_live_state WHERE expires_at < now();",
                )
                .await;
        }
        Ok(Some(event))
    }

    async fn initial(
        &self,
        id: &str,
        after: Option<u64>,
    ) -> Result<(Vec<LiveEvent>, bool), LiveError> {
        let client = self.db.client_or(db_error, db_error).await?;
        let row = client
            .query_opt(
                "SELECT state FROM replicate_webhook_live_state
                 WHERE prediction_id = $1 AND expires_at > now()",
                &[&id],
            )
            .await
            .map_err(db_error)?;
        let state: State = row
            .and_then(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
            .unwrap_or_default();
        store::initial(id, &state, after, async |from| {
            events_from(&client, id, from).await
        })
        .await
    }
}

async fn events_from(
    client: &tokio_postgres::Client,
    id: &str,
    from: u64,
) -> Result<Vec<LiveEvent>, LiveError> {
    let rows = client
        .query(
            "SELECT seq, event, data, terminal FROM replicate_webhook_live_events
             WHERE prediction_id = $1 AND seq >= $2 AND expires_at > now() ORDER BY seq",
            &[&id, &seq_i64(from)],
        )
        .await
        .map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|r| LiveEvent {
            seq: u64::try_from(r.get::<_, i64>(0)).unwrap_or_default(),
            event: r.get(1),
            data: r.get(2),
            terminal: r.get(3),
        })
        .collect())
}

/// Listens for as long as the hub lives, reconnecting after a failure.
async fn listener(url: String, pool: Pool, hub: Weak<Hub>, ready: watch::Sender<bool>) {
    loop {
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                // The connection must be polled for the LISTEN to complete and to receive.
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    // An error ends the connection, and the task.
                    while let Some(Ok(message)) = futures_util::StreamExt::next(&mut messages).await
                    {
                        if let AsyncMessage::Notification(n) = message
                            && tx.send(n.payload().to_owned()).is_err()
                        {
                            return;
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    ready.send_replace(true);
                    while let Some(payload) = rx.recv().await {
                        let Some(hub) = hub.upgrade() else {
                            driver.abort();
                            return;
                        };
                        let Ok(notice) = serde_json::from_str::<Notice>(&payload) else {
                            continue;
                        };
                        match notice.event {
                            Some(event) => hub.relay(&notice.id, event),
                            None => relay_from_table(&pool, &hub, &notice).await,
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "live channel: postgres listener cannot connect"),
        }
        if !store::reconnect(&ready, &hub).await {
            return;
        }
    }
}

/// Reads an event too large for a notification from the table and relays it.
async fn relay_from_table(pool: &Pool, hub: &Hub, notice: &Notice) {
    let Ok(client) = pool.get().await else { return };
    if let Ok(events) = events_from(&client, &notice.id, notice.seq).await
        && let Some(event) = events.into_iter().find(|e| e.seq == notice.seq)
    {
        hub.relay(&notice.id, event);
    }
}
