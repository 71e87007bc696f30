//! The quickstart receiver: every Replicate webhook for any model, predictions and trainings,
//! verified, deduplicated and printed as one line per handler run.
//!
//! ```text
//! cargo run -p replicate-webhook-examples --bin quickstart
//! ```
//!
//! Reads `REPLICATE_WEBHOOK_SECRET` (one or more `whsec_…` secrets; when unset, a development
//! secret is generated and printed on stderr), `REPLICATE_WEBHOOK_STORE` (default
//! `sqlite://replicate-webhook.db` in the working directory, so a restart remembers what it
//! handled) and `BIND` (default `127.0.0.1:8080`), and serves `POST /webhooks/replicate`;
//! with `REPLICATE_WEBHOOK_DASHBOARD_TOKEN` the dashboard too, at `/replicate/dashboard`, and with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` one OpenTelemetry span per delivery, exported over OTLP.
//!
//! With `REPLICATE_WEBHOOK_COG_TOKEN` set, it also takes the webhooks of self-hosted Cog
//! containers started with `WEBHOOK_AUTH_TOKEN` set to the same token, on `POST /webhooks/cog`.
//!
//! With `REPLICATE_WEBHOOK_INBOX=sqlite://PATH` or `postgres://…` every delivery is stored there
//! and acknowledged at once, and a worker in the same process runs the handlers (inbox mode).
//! `quickstart receive` serves without a worker, `quickstart worker` runs only a worker, until
//! SIGINT or SIGTERM.

use std::borrow::Cow;
use std::process::ExitCode;

use actix_web::http::KeepAlive;
use actix_web::{App, HttpServer};
use replicate_webhook::dashboard::{DEFAULT_PREFIX, Dashboard};
use replicate_webhook::dedupe::StoreUrl;
use replicate_webhook::inbox::{ENV_INBOX, Inbox, InboxOptions, Worker};
use replicate_webhook::live::{ENV_LIVE, LiveOptions};
use replicate_webhook::reconcile::Reconcile;
use replicate_webhook::{
    CogToken, ConfigError, ENV_COG_TOKEN, ENV_DASHBOARD_TOKEN, ENV_SECRET, ENV_STORE, HandlerError,
    Prediction, Secret, TrainingOutput, WebhookConfig, Webhooks, parse_secrets, replicate_webhook,
};

/// Any model, every event.
#[replicate_webhook(model = "*", events = ["start", "output", "logs", "completed"])]
mod any_model {
    use replicate_webhook::{HandlerError, Prediction};

    use super::{failed, seen};

    async fn on_start(p: Prediction) -> Result<(), HandlerError> {
        seen("on_start", &p)
    }

    async fn on_output(p: Prediction) -> Result<(), HandlerError> {
        seen("on_output", &p)
    }

    async fn on_logs(p: Prediction) -> Result<(), HandlerError> {
        seen("on_logs", &p)
    }

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        seen("on_succeeded", &p)
    }

    async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
        failed(&p)
    }

    async fn on_canceled(p: Prediction) -> Result<(), HandlerError> {
        seen("on_canceled", &p)
    }

    async fn on_aborted(p: Prediction) -> Result<(), HandlerError> {
        seen("on_aborted", &p)
    }
}

/// Trainings of any trainer, every event: the same path, told apart by the body.
#[replicate_webhook(training = "*", events = ["start", "output", "logs", "completed"])]
mod any_training {
    use replicate_webhook::{HandlerError, Training};

    use super::{failed, report, seen, shown};

    async fn on_start(t: Training) -> Result<(), HandlerError> {
        seen("on_start", &t)
    }

    async fn on_output(t: Training) -> Result<(), HandlerError> {
        seen("on_output", &t)
    }

    async fn on_logs(t: Training) -> Result<(), HandlerError> {
        seen("on_logs", &t)
    }

    async fn on_succeeded(t: Training) -> Result<(), HandlerError> {
        let output = t.output.clone().unwrap_or_default();
        let extra = format!(
            " version={} weights={}",
            shown(output.version.as_deref().unwrap_or_default()),
            shown(output.weights.as_deref().unwrap_or_default())
        );
        report("on_succeeded", &t, &extra)
    }

    async fn on_failed(t: Training) -> Result<(), HandlerError> {
        failed(&t)
    }

    async fn on_canceled(t: Training) -> Result<(), HandlerError> {
        seen("on_canceled", &t)
    }
}

/// `replicate/hello-world` returns a string: its handlers get it typed.
#[replicate_webhook(model = "replicate/hello-world", events = ["start", "output", "logs", "completed"])]
mod hello_world {
    use replicate_webhook::{DecodeError, HandlerError, Prediction};

    use super::{failed, report, seen, shown};

    async fn on_start(p: Prediction) -> Result<(), HandlerError> {
        seen("on_start", &p)
    }

    async fn on_output(p: Prediction<String>) -> Result<(), HandlerError> {
        let output = format!(" output={:?}", p.output.as_deref().unwrap_or_default());
        report("on_output", &p, &output)
    }

    async fn on_logs(p: Prediction) -> Result<(), HandlerError> {
        seen("on_logs", &p)
    }

    async fn on_succeeded(p: Prediction<String>) -> Result<(), HandlerError> {
        let output = format!(" output={:?}", p.output.as_deref().unwrap_or_default());
        report("on_succeeded", &p, &output)
    }

    async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
        failed(&p)
    }

    async fn on_canceled(p: Prediction) -> Result<(), HandlerError> {
        seen("on_canceled", &p)
    }

    async fn on_decode_error(e: DecodeError) -> Result<(), HandlerError> {
        let id = e.prediction().map(|p| p.id).unwrap_or_default();
        println!("on_decode_error id={} error={:?}", shown(&id), e.message());
        Ok(())
    }
}

/// Self-hosted Cog containers (coglet), every event: their bodies name no model, so the path
/// alone picks this module.
#[replicate_webhook(cog, path = "/webhooks/cog", events = ["output", "logs", "completed"])]
mod cog_containers {
    use replicate_webhook::{HandlerError, Prediction};

    use super::{failed, seen};

    async fn on_output(p: Prediction) -> Result<(), HandlerError> {
        seen("on_output", &p)
    }

    async fn on_logs(p: Prediction) -> Result<(), HandlerError> {
        seen("on_logs", &p)
    }

    async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        seen("on_succeeded", &p)
    }

    async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
        failed(&p)
    }

    async fn on_canceled(p: Prediction) -> Result<(), HandlerError> {
        seen("on_canceled", &p)
    }
}

/// What a line says after the status, by the output type: a training's output type is what
/// tells it from a prediction, since both are the same `Prediction` struct.
trait Output {
    const KIND: &'static str = "";
}

impl Output for serde_json::Value {}

impl Output for String {}

impl Output for TrainingOutput {
    const KIND: &'static str = " kind=training";
}

/// The handler line without extras; every handler here only reports.
fn seen<O: Output, I>(handler: &str, p: &Prediction<O, I>) -> Result<(), HandlerError> {
    report(handler, p, "")
}

/// `on_failed`'s line, with the error Replicate reported.
fn failed<O: Output, I>(p: &Prediction<O, I>) -> Result<(), HandlerError> {
    let error = format!(" error={:?}", p.error.as_deref().unwrap_or_default());
    report("on_failed", p, &error)
}

/// One stdout line per handler run: `<handler> id=<id> model=<model> status=<status>…`, with
/// `kind=training` after the status for a training.
#[allow(clippy::unnecessary_wraps)] // the handlers' result, so that each is one call
fn report<O: Output, I>(
    handler: &str,
    p: &Prediction<O, I>,
    extra: &str,
) -> Result<(), HandlerError> {
    println!(
        "{handler} id={} model={} status={}{}{extra}",
        shown(&p.id),
        shown(&p.model),
        shown(p.status.as_str()),
        O::KIND
    );
    Ok(())
}

/// `text` as it is when it is visible ASCII without quotes or backslashes (every real id, model
/// and status), else quoted and escaped as Rust's `{:?}` does.
///
/// The body is signed but not trusted: a line break in an id must not print a second,
/// forged handler line, and a space must not add a forged `key=value`.
fn shown(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{text:?}"))
    }
}

/// The store when `REPLICATE_WEBHOOK_STORE` is unset: embedded and durable.
const DEFAULT_STORE: &str = "sqlite://replicate-webhook.db";

fn config() -> Result<WebhookConfig, ConfigError> {
    let setting = |var| {
        std::env::var(var)
            .ok()
            .filter(|s: &String| !s.trim().is_empty())
    };
    let inbox_setting = setting(ENV_INBOX);
    let inbox = inbox_setting
        .as_deref()
        .map(StoreUrl::parse)
        .transpose()
        .map_err(ConfigError::Inbox)?;
    // One database for the jobs and their dedupe keys, unless told otherwise. The setting
    // itself, not the parsed URL's text: that one has the password hidden.
    let setting = setting(ENV_STORE).or(inbox_setting);
    if setting.is_none() {
        eprintln!(
            "{ENV_STORE} is not set; remembering deliveries in {DEFAULT_STORE} (in the working directory)"
        );
    }
    let store = StoreUrl::parse(setting.as_deref().unwrap_or(DEFAULT_STORE))?;
    let secrets = match parse_secrets(&std::env::var(ENV_SECRET).unwrap_or_default()) {
        Err(ConfigError::MissingSecret) => {
            let secret = Secret::generate();
            eprintln!(
                "{ENV_SECRET} is not set; using a development secret for this run:\n  \
                 {ENV_SECRET}={}",
                secret.expose()
            );
            vec![secret]
        }
        other => other?,
    };
    let mut config = WebhookConfig::with_secrets(secrets).store_url(&store)?;
    eprintln!("quickstart: dedupe store {}", config.store_name());
    if let Some(token) = std::env::var(ENV_COG_TOKEN).ok().and_then(CogToken::new) {
        eprintln!("quickstart: Cog containers accepted on /webhooks/cog ({ENV_COG_TOKEN})");
        config = config.cog_token(token);
    }
    if let Some(url) = inbox {
        let inbox = Inbox::open(&url).map_err(ConfigError::Inbox)?;
        eprintln!("quickstart: inbox mode, jobs in {}", inbox.name());
        config = config.inbox(inbox).inbox_every_module(true);
    }
    // With REPLICATE_API_TOKEN set, predictions whose terminal webhook is lost (the receiver was
    // down past Replicate's retries) are polled and handled once all the same.
    if let Some(reconcile) = Reconcile::from_env()? {
        eprintln!("quickstart: reconciler on");
        config = config.reconcile(reconcile);
    }
    // With REPLICATE_WEBHOOK_DASHBOARD_TOKEN set, the dashboard is at /replicate/dashboard.
    if let Some(token) = std::env::var(ENV_DASHBOARD_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        eprintln!("quickstart: dashboard on at {DEFAULT_PREFIX}");
        config = config.dashboard(Dashboard::new(token));
    }
    // With REPLICATE_WEBHOOK_LIVE=1 each accepted delivery is also pushed to browsers
    // (GET /live/predictions/{id}/events?token=…; see docs/live.md).
    if std::env::var(ENV_LIVE).is_ok_and(|v| v == "1" || v == "true") {
        eprintln!("quickstart: live channel on");
        config = config
            .live(LiveOptions::default())
            .map_err(ConfigError::Live)?;
    }
    Ok(config)
}

fn main() -> ExitCode {
    let otel = replicate_webhook_examples::init_logging();
    if otel.is_some() {
        eprintln!("quickstart: OpenTelemetry on (OTEL_EXPORTER_OTLP_ENDPOINT)");
    }
    let code = run();
    if let Some(otel) = otel {
        otel.shutdown();
    }
    code
}

fn run() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let config = match (config(), mode.as_str()) {
        (Ok(config), "" | "worker") => config,
        (Ok(config), "receive") => config.inbox_options(InboxOptions {
            in_process: false,
            ..InboxOptions::default()
        }),
        (Ok(_), other) => {
            eprintln!("quickstart: unknown mode `{other}`; expected `receive` or `worker`");
            return ExitCode::from(2);
        }
        (Err(e), _) => {
            eprintln!("quickstart: {e}");
            return ExitCode::from(2);
        }
    };
    if mode == "worker" {
        return work(&config);
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    // Built once, before binding: a wrong route table fails here, not in every worker.
    let webhooks = match config.build() {
        Ok(webhooks) => webhooks,
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(serve(webhooks, &bind)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: cannot serve on {bind}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs only a worker until SIGINT or SIGTERM, then lets running handlers finish.
fn work(config: &WebhookConfig) -> ExitCode {
    let worker = match Worker::new(config).map(Worker::spawn) {
        Ok(Ok(worker)) => worker,
        Ok(Err(e)) => {
            eprintln!("quickstart: cannot start the worker: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("quickstart: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("quickstart: worker running; listening on the inbox");
    let stopped = actix_web::rt::System::new().block_on(async {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = actix_web::rt::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    });
    if let Err(e) = stopped {
        eprintln!("quickstart: cannot wait for signals: {e}");
    }
    eprintln!("quickstart: stopping; waiting for running handlers");
    worker.shutdown();
    ExitCode::SUCCESS
}

async fn serve(webhooks: Webhooks, bind: &str) -> std::io::Result<()> {
    let server = HttpServer::new(move || App::new().configure(webhooks.configure()))
        // actix-web puts a deadline on a connection's first request head only: a kept-alive
        // connection's next head may trickle in for ever, and enough of them pin every file
        // descriptor. Without keep-alive every request is a first one, bounded by
        // `client_request_timeout` (5 s by default).
        .keep_alive(KeepAlive::Disabled)
        .bind(bind)?;
    eprintln!("quickstart: listening on http://{bind}/webhooks/replicate");
    server.run().await
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn plain_values_are_shown_as_they_are() {
        for text in [
            "gm3qorzdhgbfurvjtvhg6dckhu",
            "replicate/hello-world",
            "succeeded",
            "",
        ] {
            assert_eq!(shown(text), text);
        }
    }

    #[test]
    fn anything_else_is_quoted_and_escaped() {
        assert_eq!(
            shown("weird\r\non_failed id=x"),
            r#""weird\r\non_failed id=x""#
        );
        assert_eq!(shown("a b"), r#""a b""#);
        assert_eq!(shown(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(shown("\u{1b}[2K"), r#""\u{1b}[2K""#);
        assert_eq!(shown("caf\u{e9}"), "\"caf\u{e9}\"");
    }
}
