//! `simulate`: run the local Replicate API.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use replicate_webhook::{Event, Secret};
use replicate_webhook_cli::duration;
use replicate_webhook_cli::simulator::{self, Config, Faults, Outcome, Script};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::{CliError, Exit};

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:5555")]
    bind: String,
    /// The signing secret; generated and printed when neither this nor the variable is set.
    #[arg(long, env = "REPLICATE_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<SecretString>,
    /// Require this API token (`Authorization: Bearer ...`); by default any token is accepted.
    #[arg(long)]
    token: Option<SecretString>,
    /// A directory of schema files (`owner/name.json` or `owner__name.json`) to serve besides the
    /// built-in replicate/hello-world.
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// Time a prediction stays `starting`.
    #[arg(long, default_value = "300ms", value_parser = duration::parse)]
    start_delay: Duration,
    /// Number of processing steps (each adds a log line and output).
    #[arg(long, default_value_t = 3)]
    steps: u32,
    /// Time between steps.
    #[arg(long, default_value = "600ms", value_parser = duration::parse)]
    step: Duration,
    /// How predictions end: succeeded, failed or canceled.
    #[arg(long, default_value = "succeeded", value_parser = parse_outcome)]
    outcome: Outcome,
    /// Minimum time between two output/logs deliveries of one prediction.
    #[arg(long, default_value = "500ms", value_parser = duration::parse)]
    throttle: Duration,
    /// Delays between attempts of a terminal webhook, comma-separated (`none`: no retry).
    #[arg(long, default_value = "1s,2s,4s,8s,16s,30s", value_parser = duration::parse_list)]
    retry_schedule: std::vec::Vec<Duration>,
    /// Time allowed for one delivery attempt.
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    delivery_timeout: Duration,
    /// Deliver these events twice (same webhook-id): start,output,logs,completed or all.
    #[arg(long, value_name = "EVENTS")]
    duplicate: Option<String>,
    /// Never deliver these events: start,output,logs,completed or all.
    #[arg(long, value_name = "EVENTS")]
    drop: Option<String>,
    /// Send each intermediate webhook after the next one (out-of-order delivery).
    #[arg(long)]
    reorder: bool,
    /// Delay every delivery by this long.
    #[arg(long, default_value = "0s", value_parser = duration::parse)]
    delay: Duration,
    /// Answer the next API calls with these statuses, in order (e.g. 429,503,0,500; 0 = answer normally).
    #[arg(long, value_delimiter = ',')]
    api_errors: Vec<u16>,
    /// Predictions per page of GET /v1/predictions.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// Deliver as Replicate does, or as a self-hosted Cog container does (coglet: unsigned, a
    /// bearer token, no webhook-id, Cog's body, output never throttled, terminal retries only on
    /// 429/500/502/503/504 or no answer, 12 of them, 100 ms·2^n apart).
    #[arg(long, value_enum, default_value_t = crate::SenderKind::Replicate)]
    sender: crate::SenderKind,
    /// With --sender coglet: the bearer token deliveries carry (WEBHOOK_AUTH_TOKEN).
    #[arg(long, env = "REPLICATE_WEBHOOK_COG_TOKEN", hide_env_values = true)]
    cog_token: Option<SecretString>,
    /// Do not print a line per delivery attempt.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_outcome(text: &str) -> Result<Outcome, String> {
    Outcome::parse(text).ok_or_else(|| "expected succeeded, failed or canceled".to_owned())
}

fn parse_events(text: &str) -> Result<BTreeSet<Event>, String> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(BTreeSet::new());
    }
    if text == "all" {
        return Ok(Event::ALL.into_iter().collect());
    }
    text.split(',')
        .map(|e| Event::parse(e.trim()).ok_or_else(|| format!("unknown event `{e}`")))
        .collect()
}

pub(crate) fn run(args: &SimulateArgs) -> Exit {
    let (secret, generated) = match args.secret.as_ref().map(|s| s.expose_secret().trim()) {
        Some(text) if !text.is_empty() => (
            crate::webhooks::signing_secret(text).map_err(CliError::Usage)?,
            false,
        ),
        _ => (Secret::generate(), true),
    };
    let events = |flag: &str, text: &Option<String>| {
        parse_events(text.as_deref().unwrap_or_default()).map_err(|e| format!("--{flag}: {e}"))
    };
    let duplicate = events("duplicate", &args.duplicate).map_err(CliError::Usage)?;
    let drop = events("drop", &args.drop).map_err(CliError::Usage)?;
    let listener = std::net::TcpListener::bind(&args.bind)
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.bind)))?;
    let config = Config {
        token: args.token.clone(),
        schemas: args.schemas.clone(),
        script: Script {
            start_delay: args.start_delay,
            steps: args.steps,
            step: args.step,
            outcome: args.outcome,
        },
        throttle: args.throttle,
        retry_schedule: args.retry_schedule.clone(),
        delivery_timeout: args.delivery_timeout,
        faults: Faults {
            duplicate,
            drop,
            reorder: args.reorder,
            delay: args.delay,
        },
        page_size: args.page_size,
        api_errors: args.api_errors.clone(),
        verbose: !args.quiet,
        sender: match args.sender {
            crate::SenderKind::Replicate => simulator::Sender::Replicate,
            crate::SenderKind::Coglet => simulator::Sender::Coglet {
                token: args.cog_token.clone(),
            },
        },
        ..Config::new(secret.clone())
    };
    actix_web::rt::System::new().block_on(async move {
        let (server, running) = simulator::serve(config, listener)
            .map_err(|e| CliError::Usage(format!("cannot start the simulator: {e}")))?;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "simulator listening on http://{}", running.addr);
        if generated {
            let _ = writeln!(out, "webhook secret: {}", secret.expose());
        }
        let _ = writeln!(out, "api: {}", running.api_base);
        let _ = out.flush();
        server
            .await
            .map_err(|e| CliError::Usage(format!("the simulator stopped: {e}")))?;
        Ok(0)
    })
}
