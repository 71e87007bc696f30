//! Shared helpers: the real binary, a simulator child process, and a receiver built in code.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Service as _;
use actix_web::{App, HttpRequest, HttpResponse, web};
use replicate_webhook::WebhookConfig;
use replicate_webhook_cli::simulator::DeliveryRecord;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const HELLO_WORLD_VERSION: &str =
    "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa";

/// Serves the app `factory` builds on 127.0.0.1:0 with one worker, on the current runtime;
/// evaluates to `("http://127.0.0.1:PORT", handle)`.
macro_rules! serve {
    ($factory:expr) => {{
        let server = ::actix_web::HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        ::actix_web::rt::spawn(server);
        (format!("http://{addr}"), handle)
    }};
}
#[allow(unused_imports)] // not every test file serves an app of its own
pub(crate) use serve;

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_replicate-webhook"));
    cmd.env_remove("REPLICATE_WEBHOOK_SECRET")
        .env_remove("REPLICATE_API_TOKEN")
        .env_remove("REPLICATE_API_BASE_URL");
    cmd
}

/// A `replicate-webhook simulate` child process on a free loopback port.
pub struct Simulator {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub root: String,
    /// `http://127.0.0.1:PORT/v1`.
    pub api: String,
    /// The generated secret, when `--secret` was not given.
    pub generated_secret: Option<String>,
    /// The lines the simulator prints on stderr, when started with [`Simulator::start_verbose`].
    stderr: Option<mpsc::Receiver<String>>,
}

impl Simulator {
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(args, false)
    }

    /// Like [`Simulator::start`], printing one line per delivery attempt (and each give-up) on a
    /// stderr the test reads with [`Simulator::wait_for_stderr`].
    pub fn start_verbose(args: &[&str]) -> Self {
        Self::spawn(args, true)
    }

    fn spawn(args: &[&str], verbose: bool) -> Self {
        let mut cmd = bin();
        cmd.args(["simulate", "--bind", "127.0.0.1:0"]);
        if !verbose {
            cmd.arg("--quiet");
        }
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(if verbose {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the replicate-webhook binary runs");
        let stderr = child.stderr.take().map(|pipe| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut root = None;
        let mut generated_secret = None;
        let api = loop {
            let line = lines
                .next()
                .expect("the simulator prints its address")
                .unwrap();
            if let Some(addr) = line.strip_prefix("simulator listening on ") {
                root = Some(addr.to_owned());
            } else if let Some(secret) = line.strip_prefix("webhook secret: ") {
                generated_secret = Some(secret.to_owned());
            } else if let Some(api) = line.strip_prefix("api: ") {
                break api.to_owned();
            }
        };
        Self {
            child,
            root: root.expect("listening line"),
            api,
            generated_secret,
            stderr,
        }
    }

    /// Waits (at most 20 s) for a stderr line containing every one of `needles`, and returns the
    /// lines read up to and including it.
    pub async fn wait_for_stderr(&self, needles: &[&str]) -> Vec<String> {
        let rx = self
            .stderr
            .as_ref()
            .expect("started with Simulator::start_verbose");
        let until = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let found = needles.iter().all(|n| line.contains(n));
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < until,
                        "timed out waiting for {needles:?} on stderr: {seen:#?}"
                    );
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
                Err(TryRecvError::Disconnected) => {
                    panic!("the simulator exited before printing {needles:?}: {seen:#?}")
                }
            }
        }
    }

    pub async fn deliveries(&self, prediction: &str) -> Vec<DeliveryRecord> {
        let url = format!(
            "{}/_simulator/deliveries?prediction={prediction}",
            self.root
        );
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    /// Polls the delivery log until `done` holds (or panics after 20 s).
    pub async fn wait_for(
        &self,
        prediction: &str,
        done: impl Fn(&[DeliveryRecord]) -> bool,
    ) -> Vec<DeliveryRecord> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.deliveries(prediction).await;
            if done(&records) {
                return records;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for deliveries: {records:#?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub path_and_query: String,
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub at: Instant,
    pub status: u16,
}

/// A receiver built from a `WebhookConfig`, served on 127.0.0.1:0.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub root: String,
    pub arrivals: Arc<Mutex<Vec<Arrival>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub fn start(config: WebhookConfig) -> Self {
        let arrivals: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let log = arrivals.clone();
        let (root, handle) = serve!(move || {
            let log = log.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let mut arrival = Arrival {
                        path_and_query: req.uri().to_string(),
                        webhook_id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        at: Instant::now(),
                        status: 0,
                    };
                    let log = log.clone();
                    let response = srv.call(req);
                    async move {
                        let response = response.await?;
                        arrival.status = response.status().as_u16();
                        log.lock().unwrap().push(arrival);
                        Ok(response)
                    }
                })
                .configure(replicate_webhook::configure(config.clone()))
        });
        Self {
            root,
            arrivals,
            handle,
        }
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A shared log of handler runs: (handler, prediction id, status).
pub type Runs = Arc<Mutex<Vec<(String, String, String)>>>;

/// One request a [`Stub`] got.
#[derive(Debug, Clone)]
pub struct StubRequest {
    pub method: String,
    pub path_and_query: String,
    pub authorization: Option<String>,
    pub at: Instant,
}

/// A plain HTTP server on 127.0.0.1:0 that records every request and answers with `respond`.
pub struct Stub {
    /// `http://127.0.0.1:PORT`.
    pub root: String,
    requests: Arc<Mutex<Vec<StubRequest>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Stub {
    pub fn start(respond: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static) -> Self {
        let requests: Arc<Mutex<Vec<StubRequest>>> = Arc::default();
        let log = requests.clone();
        let respond = Arc::new(respond);
        let (root, handle) = serve!(move || {
            let (log, respond) = (log.clone(), respond.clone());
            App::new().default_service(web::to(move |req: HttpRequest| {
                let (log, respond) = (log.clone(), respond.clone());
                async move {
                    log.lock().unwrap().push(StubRequest {
                        method: req.method().to_string(),
                        path_and_query: req.uri().to_string(),
                        authorization: req
                            .headers()
                            .get("authorization")
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                        at: Instant::now(),
                    });
                    respond(&req)
                }
            }))
        });
        Self {
            root,
            requests,
            handle,
        }
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
