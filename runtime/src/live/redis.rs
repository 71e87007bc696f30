//! The channel through Redis, so a subscriber on any instance sees what any instance accepted.
//!
//! Per prediction, a hash `{prefix}live:{id}:state` (the state as JSON and its `seq`) and a stream
//! `{prefix}live:{id}:events` whose entry ids are `seq-0`: the replay window (`XADD MAXLEN ~`).
//! A change is applied in Rust and written by one Lua script that checks `seq` did not move
//! (compare-and-set; a concurrent writer makes it retry), sets both keys' expiry to the
//! retention, and `PUBLISH`es the event on one channel every instance listens to with one
//! connection, which hands it to that instance's subscribers of the prediction.
//!
//! This backend opens its own connections from the store URL, through the dedupe store's
//! connection helper: it shares the URL and its `prefix` with the dedupe store, not its
//! connections nor their timeouts (it keeps the connection manager's defaults).

use std::sync::Weak;

use futures_util::StreamExt as _;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use super::hub::Hub;
use super::state::{LiveEvent, State};
use super::store::{self, Listener, LiveStore};
use super::{Bounds, Change, LiveError};
use crate::dedupe::RedisConn;

const NOT_LISTENING: &str = "redis: the live listener is not subscribed";
/// Attempts of the compare-and-set before giving up: writers of one prediction are few.
const ATTEMPTS: usize = 8;

pub(crate) struct RedisLive {
    conn: RedisConn,
    prefix: String,
    channel: String,
    bounds: Bounds,
    listener: Listener,
    write: Script,
}

/// What goes over the pub/sub channel: the event and whose it is.
#[derive(serde::Serialize, serde::Deserialize)]
struct Relayed {
    id: String,
    #[serde(flatten)]
    event: LiveEvent,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(store_error)`
fn store_error(e: redis::RedisError) -> LiveError {
    LiveError::Store(format!("redis: {e}"))
}

impl RedisLive {
    pub(crate) fn open(url: &str, bounds: Bounds) -> Result<Self, LiveError> {
        // The connection manager's defaults, not the dedupe store's bounded waits.
        let (conn, prefix) = RedisConn::open(url, ConnectionManagerConfig::new())
            .map_err(|e| LiveError::Store(e.to_string()))?;
        Ok(Self {
            conn,
            channel: format!("{prefix}live"),
            prefix,
            bounds,
            listener: Listener::new(NOT_LISTENING),
            // KEYS: state hash, events stream. ARGV: expected seq, new seq, state JSON, event,
            // data, terminal, replay length, retention ms, channel, relayed message.
            write: Script::new(
                r"
                local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
                if seq ~= ARGV[1] then return 0 end
                redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'state', ARGV[3])
                redis.call('PEXPIRE', KEYS[1], ARGV[8])
                redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], ARGV[2] .. '-0',
                    'event', ARGV[4], 'data', ARGV[5], 'terminal', ARGV[6])
                redis.call('PEXPIRE', KEYS[2], ARGV[8])
                redis.call('PUBLISH', ARGV[9], ARGV[10])
                return 1
                ",
            ),
        })
    }

    fn keys(&self, id: &str) -> (String, String) {
        // The hash tag keeps a prediction's keys in one Redis Cluster slot.
        (
            format!("{}live:{{{id}}}:state", self.prefix),
            format!("{}live:{{{id}}}:events", self.prefix),
        )
    }

    async fn read_state(conn: &mut ConnectionManager, state_key: &str) -> Result<State, LiveError> {
        let text: Option<String> = redis::cmd("HGET")
            .arg(state_key)
            .arg("state")
            .query_async(conn)
            .await
            .map_err(store_error)?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl LiveStore for RedisLive {
    fn listener(&self) -> &Listener {
        &self.listener
    }

    fn spawn_listener(&self, hub: Weak<Hub>, ready: watch::Sender<bool>) {
        tokio::spawn(listener(
            self.conn.client.clone(),
            self.channel.clone(),
            hub,
            ready,
        ));
    }

    async fn publish(&self, change: &Change<'_>) -> Result<Option<LiveEvent>, LiveError> {
        let mut conn = self.conn.connect().await.map_err(store_error)?;
        let id = change.id();
        let (state_key, events_key) = self.keys(id);
        for _ in 0..ATTEMPTS {
            let mut state = Self::read_state(&mut conn, &state_key).await?;
            let expected = state.seq;
            let Some(event) = change.apply(&mut state) else {
                return Ok(None);
            };
            let state_json = store::to_json(&state)?;
            let relayed = store::to_json(&Relayed {
                id: id.to_owned(),
                event: event.clone(),
            })?;
            let written: i64 = self
                .write
                .key(&state_key)
                .key(&events_key)
                .arg(expected)
                .arg(event.seq)
                .arg(state_json)
                .arg(&event.event)
                .arg(&event.data)
                .arg(u8::from(event.terminal))
                .arg(self.bounds.replay_events)
                .arg(
                    u64::try_from(self.bounds.retention.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                )
                .arg(&self.channel)
                .arg(relayed)
                .invoke_async(&mut conn)
                .await
                .map_err(store_error)?;
            if written == 1 {
                return Ok(Some(event));
            }
        }
        Err(LiveError::Store(format!(
            "redis: the state of {id} kept changing; gave up after {ATTEMPTS} attempts"
        )))
    }

    async fn initial(
        &self,
        id: &str,
        after: Option<u64>,
    ) -> Result<(Vec<LiveEvent>, bool), LiveError> {
        let mut conn = self.conn.connect().await.map_err(store_error)?;
        let (state_key, events_key) = self.keys(id);
        let state = Self::read_state(&mut conn, &state_key).await?;
        store::initial(id, &state, after, async |from| {
            let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(&events_key)
                .arg(format!("{from}-0"))
                .arg("+")
                .query_async(&mut conn)
                .await
                .map_err(store_error)?;
            Ok(entries.iter().filter_map(entry).collect())
        })
        .await
    }
}

/// One stream entry as an event: id `seq-0`, fields event, data, terminal.
fn entry((id, fields): &(String, Vec<String>)) -> Option<LiveEvent> {
    let seq = id.split_once('-')?.0.parse().ok()?;
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair.first().is_some_and(|k| k == name))
            .and_then(|pair| pair.get(1).cloned())
    };
    Some(LiveEvent {
        seq,
        event: field("event")?,
        data: field("data")?,
        terminal: field("terminal").as_deref() == Some("1"),
    })
}

/// Listens on the channel for as long as the hub lives, reconnecting after a failure.
async fn listener(
    client: redis::Client,
    channel: String,
    hub: Weak<Hub>,
    ready: watch::Sender<bool>,
) {
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    ready.send_replace(true);
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Some(hub) = hub.upgrade() else { return };
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        if let Ok(relayed) = serde_json::from_str::<Relayed>(&payload) {
                            hub.relay(&relayed.id, relayed.event);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "live channel: redis subscribe failed"),
            },
            Err(e) => tracing::warn!(error = %e, "live channel: redis listener cannot connect"),
        }
        if !store::reconnect(&ready, &hub).await {
            return;
        }
    }
}
