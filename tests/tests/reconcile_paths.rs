//! The reconciler's paths against a stand-in API, each able to fail for its reason: a
//! prediction the API no longer has (404) is forgotten; 429 and 5xx answers are polled again
//! until it is recovered; a re-delivery the receiver refuses is made again; a prediction with
//! no webhook URL is forgotten without a delivery; and a re-delivery after a secret rotation is
//! signed with the new secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use replicate_webhook::client::{Client, RetryPolicy};
use replicate_webhook::dedupe::{Backoff, DedupeStore, MemoryStore};
use replicate_webhook::reconcile::Reconcile;
use replicate_webhook::signature::sign;
use replicate_webhook::testkit::protocol::now_ms;
use replicate_webhook::testkit::{TestDelivery, sample_prediction};
use replicate_webhook::{HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig};
use replicate_webhook_tests::TestServer;
use serde_json::json;

const MODEL: &str = "acme/reconciled";
const TOKEN: &str = "r8_reconcile_paths";

/// What the stand-in API saw and where it sends re-deliveries.
#[derive(Debug, Default)]
struct Api {
    /// Polls per prediction id.
    polls: Mutex<HashMap<String, usize>>,
    /// The receiver's webhook URL, once it listens.
    receiver: Mutex<String>,
    /// The stand-in's own `/hook` URL.
    hook: Mutex<String>,
    /// Each delivery to `/hook`.
    hooked: Mutex<Vec<Hooked>>,
}

/// `(webhook-id, webhook-timestamp, webhook-signature, body)` of a delivery.
type Hooked = (String, i64, String, Vec<u8>);

impl Api {
    fn polls(&self, id: &str) -> usize {
        self.polls.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

/// `GET /predictions/{id}`: what the id's prefix asks for.
async fn get_prediction(api: web::Data<Api>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let poll = {
        let mut polls = api.polls.lock().unwrap();
        let n = polls.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    let succeeded = |webhook: Option<String>| {
        let mut body = sample_prediction(&id, MODEL, "succeeded", json!("out"));
        body["webhook"] = webhook.map_or(serde_json::Value::Null, Into::into);
        HttpResponse::Ok().json(body)
    };
    let receiver = api.receiver.lock().unwrap().clone();
    match id.split('_').next().unwrap_or_default() {
        "gone" => HttpResponse::NotFound().json(json!({"detail": "Not found."})),
        "busy" if poll == 1 => HttpResponse::TooManyRequests().json(json!({"detail": "slow down"})),
        "busy" if poll == 2 => HttpResponse::BadGateway().finish(),
        "nohook" => succeeded(None),
        "rotated" => succeeded(Some(api.hook.lock().unwrap().clone())),
        _ => succeeded(Some(receiver)),
    }
}

/// `POST /hook`: records a re-delivery as it came.
async fn hook(api: web::Data<Api>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    api.hooked.lock().unwrap().push((
        header("webhook-id"),
        header("webhook-timestamp").parse().unwrap_or_default(),
        header("webhook-signature"),
        body.to_vec(),
    ));
    HttpResponse::Ok().finish()
}

/// The stand-in API, served on 127.0.0.1.
fn stand_in() -> (web::Data<Api>, TestServer) {
    let api = web::Data::new(Api::default());
    let shared = api.clone();
    let server = TestServer::start(move || {
        let api = shared.clone();
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(api)
                .route("/v1/predictions/{id}", web::get().to(get_prediction))
                .route("/hook", web::post().to(hook));
        }
    });
    (api, server)
}

/// Runs of `on_succeeded` per prediction id; a `refused_…` prediction fails its first run.
type Runs = Arc<Mutex<HashMap<String, usize>>>;

fn module(runs: &Runs) -> Module {
    let runs = runs.clone();
    Module::new(MODEL).on(HandlerKind::Succeeded, move |p: Prediction| {
        let n = {
            let mut runs = runs.lock().unwrap();
            let n = runs.entry(p.id.clone()).or_default();
            *n += 1;
            *n
        };
        async move {
            if p.id.starts_with("refused_") && n == 1 {
                return Err(HandlerError::retry("the first re-delivery is refused"));
            }
            Ok(())
        }
    })
}

/// Watched predictions still in `store` (taken with a zero backoff, so asking again finds them
/// again).
async fn watched(store: &Arc<dyn DedupeStore>) -> Vec<String> {
    let later = now_ms() + 24 * 60 * 60 * 1000;
    let again = Backoff {
        base_ms: 0,
        cap_ms: 0,
    };
    let mut ids: Vec<String> = Arc::clone(store)
        .watch_list()
        .expect("the memory store keeps a watch list")
        .take_due(later, 100, again)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

/// Waits until `done` holds, or fails saying `what`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn the_reconciler_forgets_404_polls_again_after_429_and_5xx_redelivers_a_refusal_skips_no_url_and_signs_with_the_new_secret()
 {
    let (api, api_server) = stand_in();
    *api.hook.lock().unwrap() = format!("{}/hook", api_server.base);

    // Rotated: the new secret first (it signs), the old one still accepted.
    let (new, old) = (Secret::generate(), Secret::generate());
    let client = Client::new(&format!("{}/v1", api_server.base), Some(TOKEN.to_owned()))
        .unwrap()
        // One attempt a poll: the reconciler's own polls are what is tested.
        .retry_policy(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        });
    let store: Arc<dyn DedupeStore> = Arc::new(MemoryStore::new());
    let runs: Runs = Arc::default();
    let config = WebhookConfig::with_secrets(vec![new.clone(), old.clone()])
        .collect_registered(false)
        .shared_store(store.clone())
        .reconcile(Reconcile::new(client).after(Duration::from_millis(100)))
        .module(module(&runs));
    let receiver = TestServer::serve(config);
    *api.receiver.lock().unwrap() = receiver.url(replicate_webhook::DEFAULT_PATH);

    let suffix = replicate_webhook::testkit::new_prediction_id();
    let ids: Vec<String> = ["busy", "gone", "nohook", "refused", "rotated"]
        .iter()
        .map(|kind| format!("{kind}_{suffix}"))
        .collect();
    // Each prediction's `starting` reaches the receiver (signed with the old secret, still
    // accepted), which watches it from then on; its terminal webhook never comes.
    for id in &ids {
        let starting = sample_prediction(id, MODEL, "starting", json!(null));
        let signed = TestDelivery::new(starting.to_string()).sign(&old);
        assert_eq!(receiver.deliver(&signed).await.0, 200, "{id}");
    }
    let [busy, gone, nohook, refused, rotated] = &ids[..] else {
        unreachable!()
    };
    let ran = |id: &str| runs.lock().unwrap().get(id).copied().unwrap_or(0);

    // 429, then 502, then the result: polled until recovered, handled once.
    until("busy recovered", || ran(busy) == 1).await;
    assert!(api.polls(busy) >= 3, "{}", api.polls(busy));
    // Refused once (the handler failed, 500): delivered again, handled by the second.
    until("refused re-delivered", || ran(refused) == 2).await;
    // Signed with the new secret.
    until("rotated delivered", || {
        !api.hooked.lock().unwrap().is_empty()
    })
    .await;
    let (webhook_id, timestamp, signature, body) = api.hooked.lock().unwrap()[0].clone();
    assert_eq!(
        signature,
        sign(&new, &webhook_id, timestamp, &body).signature,
        "not signed with the current secret"
    );
    // 404 and no webhook URL: polled, then forgotten; nothing delivered for either.
    until("gone and nohook polled", || {
        api.polls(gone) >= 1 && api.polls(nohook) >= 1
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = watched(&store).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still watched after their polls: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((ran(gone), ran(nohook)), (0, 0));
    assert_eq!(api.hooked.lock().unwrap().len(), 1);
    assert_eq!(ran(rotated), 0);
    drop(receiver);
    drop(api_server);
}

/// The reconciler stops with its receiver: once the app that mounted it (on this runtime) is
/// dropped, with the config it was moved out of, the reconciler's task lets go of the store.
/// It used to run, holding the store, until the runtime stopped.
#[actix_rt::test]
async fn the_reconciler_stops_with_its_receiver() {
    // Never called: nothing is watched.
    let client = Client::new("http://127.0.0.1:9/v1", Some(TOKEN.to_owned())).unwrap();
    let store: Arc<dyn DedupeStore> = Arc::new(MemoryStore::new());
    let runs: Runs = Arc::default();
    let config = WebhookConfig::new(Secret::generate())
        .collect_registered(false)
        .shared_store(store.clone())
        .reconcile(Reconcile::new(client))
        .module(module(&runs));
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(replicate_webhook::configure(config)),
    )
    .await;
    // Let the reconciler's task start on this runtime.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(Arc::strong_count(&store) > 1);
    drop(app);
    until("the store is let go", || Arc::strong_count(&store) == 1).await;
}

/// The reconciler runs from `config.build()` on, on a thread of the receiver's own: built on a
/// thread with no runtime and mounted by no app, it still polls a watched prediction. (It used
/// to start only when an app mounted the receiver, on that actix worker's runtime.)
#[actix_rt::test]
async fn the_reconciler_runs_from_build_on_without_a_mounted_app() {
    let (api, api_server) = stand_in();
    let client = Client::new(&format!("{}/v1", api_server.base), Some(TOKEN.to_owned())).unwrap();
    let store: Arc<dyn DedupeStore> = Arc::new(MemoryStore::new());
    // Due now; 404 from the stand-in, so one poll forgets it.
    let id = format!("gone_{}", replicate_webhook::testkit::new_prediction_id());
    Arc::clone(&store)
        .watch_list()
        .expect("the memory store keeps a watch list")
        .track(&id, now_ms(), Duration::from_mins(1))
        .await
        .unwrap();
    let runs: Runs = Arc::default();
    let config = WebhookConfig::new(Secret::generate())
        .collect_registered(false)
        .shared_store(store.clone())
        .reconcile(Reconcile::new(client).after(Duration::from_millis(100)))
        .module(module(&runs));
    let webhooks = std::thread::spawn(move || config.build().unwrap())
        .join()
        .unwrap();
    until("the watched prediction polled", || api.polls(&id) >= 1).await;
    drop(webhooks);
}
