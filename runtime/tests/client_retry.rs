//! Which failures the client retries, and how long it waits, against a local API on 127.0.0.1
//! that answers a scripted list of statuses (and then succeeds), or drops connections.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use replicate_webhook::client::{Client, ClientError, CreatePrediction, RetryPolicy};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One body for every call: a prediction, a (empty) page and a webhook secret at once.
const ANSWER: &str = r#"{"id": "p1", "status": "starting", "input": {}, "results": [],
    "key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#;

/// A scripted API: each request takes the next `(status, Retry-After)`; once the script is
/// exhausted every request gets 200 and [`ANSWER`].
struct Api {
    base: String,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Api {
    fn start(script: &[(u16, Option<&'static str>)]) -> Self {
        let script: Arc<Mutex<VecDeque<_>>> =
            Arc::new(Mutex::new(script.iter().copied().collect()));
        let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let log = arrivals.clone();
        let server = HttpServer::new(move || {
            let (script, log) = (script.clone(), log.clone());
            App::new().default_service(web::to(move |req: HttpRequest| {
                let (script, log) = (script.clone(), log.clone());
                async move {
                    log.lock()
                        .unwrap()
                        .push((format!("{} {}", req.method(), req.path()), Instant::now()));
                    let next = script.lock().unwrap().pop_front();
                    match next {
                        Some((code, retry_after)) => {
                            let status = actix_web::http::StatusCode::from_u16(code).unwrap();
                            let mut response = HttpResponse::build(status);
                            if let Some(after) = retry_after {
                                response.insert_header(("retry-after", after));
                            }
                            response.json(json!({"title": "scripted", "status": code}))
                        }
                        None => HttpResponse::Ok()
                            .content_type("application/json")
                            .body(ANSWER),
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://{addr}/v1"),
            arrivals,
            handle,
        }
    }

    fn client(&self, policy: RetryPolicy) -> Client {
        Client::new(&self.base, Some("r8_test".into()))
            .unwrap()
            .retry_policy(policy)
    }

    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// The time between consecutive requests.
    fn gaps(&self) -> Vec<Duration> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.windows(2).map(|p| p[1].1 - p[0].1).collect()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn policy(max_attempts: u32, initial_ms: u64, max_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_millis(initial_ms),
        max_delay: Duration::from_millis(max_ms),
        ..RetryPolicy::default()
    }
}

fn create() -> CreatePrediction<serde_json::Value> {
    CreatePrediction::model("replicate/hello-world", json!({"text": "Alice"}))
}

#[actix_web::test]
async fn client_errors_other_than_429_are_not_retried() {
    for code in [400, 401, 402, 403, 404, 409, 422] {
        let api = Api::start(&[(code, None)]);
        let client = api.client(policy(4, 1, 10));
        let err = client.default_secret().await.unwrap_err();
        assert_eq!(err.status(), Some(code), "{err}");
        assert_eq!(api.count(), 1, "{code} was retried");
        // The API is fine now: the next call gets its answer at once.
        assert!(client.default_secret().await.is_ok());
        assert_eq!(api.count(), 2);
        api.stop().await;
    }
}

#[actix_web::test]
async fn too_many_requests_and_server_errors_are_retried_with_doubling_backoff() {
    let api = Api::start(&[(429, None), (500, None), (502, None), (503, None)]);
    let client = api.client(policy(5, 40, 1_000));
    let secret = client.default_secret().await.unwrap();
    assert_eq!(
        secret.expose(),
        replicate_webhook::Secret::parse(SECRET).unwrap().expose()
    );
    assert_eq!(api.count(), 5);
    // 40, 80, 160 and 320 ms between the attempts (timers never fire early).
    let gaps = api.gaps();
    for (gap, least) in gaps.iter().zip([40, 80, 160, 320]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
}

#[actix_web::test]
async fn attempts_stop_at_max_attempts_with_the_last_error() {
    let api = Api::start(&[(503, None), (503, None), (500, None), (503, None)]);
    let client = api.client(policy(3, 1, 10));
    let err = client.list().await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    assert_eq!(api.count(), 3);
    let api = Api::start(&[(429, None), (200, None)]);
    let err = api.client(RetryPolicy::none()).list().await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(api.count(), 1, "RetryPolicy::none() retried");
}

#[actix_web::test]
async fn retry_after_is_honoured_and_capped_by_max_delay() {
    // Retry-After: 0.4 s where the backoff would be 1 ms.
    let api = Api::start(&[(429, Some("0.4"))]);
    let started = Instant::now();
    api.client(policy(2, 1, 5_000)).list().await.unwrap();
    assert_eq!(api.count(), 2);
    assert!(
        api.gaps()[0] >= Duration::from_millis(400),
        "{:?}",
        api.gaps()
    );
    // On a 503 too.
    let api = Api::start(&[(503, Some("0.3"))]);
    api.client(policy(2, 1, 5_000)).list().await.unwrap();
    assert!(
        api.gaps()[0] >= Duration::from_millis(300),
        "{:?}",
        api.gaps()
    );
    // An hour asked for, 200 ms allowed: the client waits max_delay, not an hour.
    let api = Api::start(&[(429, Some("3600"))]);
    api.client(policy(2, 1, 200)).list().await.unwrap();
    let gap = api.gaps()[0];
    assert!(
        gap >= Duration::from_millis(200) && gap < Duration::from_secs(5),
        "{gap:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[actix_web::test]
async fn creates_retry_server_errors_only_when_allowed() {
    let cautious = || RetryPolicy {
        retry_creates_on_server_error: false,
        ..policy(4, 1, 10)
    };
    // Opted out: a 5xx may have created the prediction, so it is not retried ...
    for code in [500, 502, 503] {
        let api = Api::start(&[(code, None)]);
        let err = api.client(cautious()).create(&create()).await.unwrap_err();
        assert_eq!(err.status(), Some(code));
        assert_eq!(api.count(), 1, "create retried on {code}");
        api.stop().await;
    }
    // ... but a 429 created nothing, so it is.
    let api = Api::start(&[(429, None), (429, None)]);
    let created = api.client(cautious()).create(&create()).await.unwrap();
    assert_eq!(created.id, "p1");
    assert_eq!(api.count(), 3);
    // Other calls of the same client still retry 5xx.
    let api = Api::start(&[(503, None)]);
    api.client(cautious()).get("p1").await.unwrap();
    assert_eq!(api.count(), 2);
    // By default a create is retried on 5xx like every other call.
    let api = Api::start(&[(500, None), (503, None)]);
    let created = api
        .client(policy(4, 1, 10))
        .create(&create())
        .await
        .unwrap();
    assert_eq!(created.id, "p1");
    assert_eq!(api.count(), 3);
}

/// A listener on 127.0.0.1 that accepts connections, closes the first `drop_first` of them
/// after reading the request head, and answers the others 200 with [`ANSWER`].
/// Returns the API base URL and the number of connections accepted so far.
async fn flaky_listener(drop_first: usize) -> (String, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0usize));
    let count = accepted.clone();
    actix_web::rt::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let n = {
                let mut count = count.lock().unwrap();
                *count += 1;
                *count
            };
            actix_web::rt::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if n <= drop_first {
                    return; // dropped: the client sees the connection close without an answer
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/v1"), accepted)
}

#[actix_web::test]
async fn transport_errors_are_retried_except_for_cautious_creates() {
    let (base, accepted) = flaky_listener(2).await;
    let client = Client::new(&base, Some("r8_test".into()))
        .unwrap()
        .retry_policy(policy(4, 1, 10));
    client.default_secret().await.unwrap();
    assert_eq!(
        *accepted.lock().unwrap(),
        3,
        "two dropped, the third answered"
    );

    let (base, accepted) = flaky_listener(usize::MAX).await;
    let client = Client::new(&base, Some("r8_test".into()))
        .unwrap()
        .retry_policy(policy(3, 1, 10));
    let err = client.list().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains("r8_test"), "{err}");
    assert_eq!(*accepted.lock().unwrap(), 3, "max_attempts connections");

    // A create whose connection broke may have reached the API: not retried when opted out.
    let (base, accepted) = flaky_listener(1).await;
    let cautious = Client::new(&base, Some("r8_test".into()))
        .unwrap()
        .retry_policy(RetryPolicy {
            retry_creates_on_server_error: false,
            ..policy(4, 1, 10)
        });
    let err = cautious.create(&create()).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert_eq!(*accepted.lock().unwrap(), 1);
}
