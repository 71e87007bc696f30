//! Store outages against real Redis and PostgreSQL servers behind a proxy: while the store is
//! down or hangs, deliveries get 503 with `Retry-After` and no handler runs; when it is back, the
//! retries are handled once each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replicate_webhook::dedupe::{DedupeStore, PostgresStore, RedisStore};
use replicate_webhook::testkit::{TestDelivery, new_prediction_id, sample_prediction};
use replicate_webhook::{
    Event, HandlerError, HandlerKind, Module, Prediction, Secret, WebhookConfig, configure,
};
use replicate_webhook_tests::proxy::{Mode, Proxy};
use replicate_webhook_tests::{TestServer, services};
use serde_json::json;

const MODEL: &str = "acme/outage";
const TIMEOUT: Duration = Duration::from_millis(500);

async fn post(srv: &TestServer, d: &TestDelivery, secret: &Secret) -> (u16, Option<String>) {
    let signed = d.sign(secret);
    let mut req = reqwest::Client::new()
        .post(srv.url(signed.path()))
        .body(signed.body().to_vec());
    for (name, value) in signed.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("the receiver answers");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry_after)
}

async fn outage_then_recovery(store: Arc<dyn DedupeStore>, proxy: &Proxy) {
    let secret = Secret::generate();
    let runs = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = runs.clone();
    let module = Module::new(MODEL).events([Event::Completed]).on(
        HandlerKind::Succeeded,
        move |p: Prediction| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().unwrap().push(p.id);
                Ok::<(), HandlerError>(())
            }
        },
    );
    let config = WebhookConfig::new(secret.clone())
        .collect_registered(false)
        .module(module)
        .shared_store(store)
        .store_timeout(TIMEOUT);
    let srv = TestServer::start(move || configure(config.clone()));
    let delivery = || {
        TestDelivery::new(
            sample_prediction(&new_prediction_id(), MODEL, "succeeded", json!("x")).to_string(),
        )
    };
    let (first, during_down, during_stall) = (delivery(), delivery(), delivery());
    let count = || runs.lock().unwrap().len();

    assert_eq!(post(&srv, &first, &secret).await.0, 200);
    assert_eq!(count(), 1);

    proxy.set(Mode::Down);
    let (status, retry_after) = post(&srv, &during_down, &secret).await;
    assert_eq!(status, 503);
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert_eq!(count(), 1, "no handler runs unclaimed");

    proxy.set(Mode::Stall);
    let asked = Instant::now();
    let (status, retry_after) = post(&srv, &during_stall, &secret).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("5")));
    assert!(
        asked.elapsed() < TIMEOUT * 4,
        "a hanging store answered 503 only after {:?}",
        asked.elapsed()
    );
    assert_eq!(count(), 1);

    // Back up: Replicate's retries of both are handled, once each, and the first stays done.
    proxy.set(Mode::Up);
    for d in [&during_down, &during_stall] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match post(&srv, d, &secret).await.0 {
                200 => break,
                503 | 409 => assert!(Instant::now() < deadline, "the store never came back"),
                other => panic!("unexpected {other}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(post(&srv, &first, &secret).await.0, 200);
    assert_eq!(count(), 3, "{:?}", runs.lock().unwrap());
}

fn host_port(url: &str) -> std::net::SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap();
    format!("{host}:{}", url.port().unwrap()).parse().unwrap()
}

fn through(url: &str, proxy: &Proxy) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    url.to_string()
}

#[actix_rt::test]
async fn redis_outage_gives_503_then_recovers() {
    let Some(url) = services::redis_url() else {
        return;
    };
    let proxy = Proxy::start(host_port(&url)).await;
    let store = RedisStore::new(&through(&url, &proxy))
        .unwrap()
        .prefix(services::unique("outage"));
    outage_then_recovery(Arc::new(store), &proxy).await;
}

#[actix_rt::test]
async fn postgres_outage_gives_503_then_recovers() {
    let Some(url) = services::database_url() else {
        return;
    };
    let proxy = Proxy::start(host_port(&url)).await;
    let store = PostgresStore::new(&through(&url, &proxy)).unwrap();
    outage_then_recovery(Arc::new(store), &proxy).await;
}
