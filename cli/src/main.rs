//! `replicate-webhook`: sign, verify and send test deliveries, run a local Replicate simulator,
//! fetch the signing secret, pull and check model schemas, create predictions.

// Doc comments here are the `--help` text, written for a terminal rather than for rustdoc.
#![allow(clippy::doc_markdown, rustdoc::bare_urls)]

mod api;
mod doctor_command;
mod error;
mod inbox;
mod sample;
mod schema;
mod simulate;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::error::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "replicate-webhook",
    version,
    about = "Test, debug and simulate Replicate webhooks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign a body as Replicate would; prints the three webhook-* headers.
    Sign(SignArgs),
    /// Verify a delivery: exit 0 when valid, 1 when not (reason on stderr), 2 on usage errors.
    Verify(VerifyArgs),
    /// Send a signed sample delivery to a URL and print the response.
    #[command(alias = "trigger")]
    Send(SendArgs),
    /// Check that Replicate can deliver to URL, and say how to fix what would stop it.
    Doctor(DoctorArgs),
    /// Run a local Replicate API that delivers webhooks like Replicate does.
    Simulate(simulate::SimulateArgs),
    /// Fetch the default webhook signing secret with your API token.
    Secret(ApiArgs),
    /// Pull model schemas and check them for drift.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Look into an inbox (inbox mode's job queue): list, show, replay and discard jobs.
    #[command(subcommand)]
    Inbox(inbox::InboxCommand),
    /// Create, read, list and cancel predictions.
    #[command(subcommand, alias = "prediction")]
    Predictions(PredictionsCommand),
}

/// The signing secret: `--secret`, else `REPLICATE_WEBHOOK_SECRET`.
#[derive(Debug, Args)]
struct SecretArg {
    /// The signing secret, `whsec_...` (several, space-separated, are accepted by verify).
    #[arg(long, env = "REPLICATE_WEBHOOK_SECRET", hide_env_values = true)]
    secret: SecretString,
}

#[derive(Debug, Args)]
struct SignArgs {
    #[command(flatten)]
    secret: SecretArg,
    /// The webhook-id [default: a fresh msg_... id].
    #[arg(long, allow_hyphen_values = true)]
    id: Option<String>,
    /// The webhook-timestamp, seconds since the epoch [default: now].
    #[arg(long, allow_hyphen_values = true)]
    timestamp: Option<i64>,
    /// The body to sign, `-` for stdin.
    #[arg(default_value = "-")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    secret: SecretArg,
    /// The webhook-id header value, as received.
    #[arg(long, allow_hyphen_values = true)]
    id: String,
    /// The webhook-timestamp header value, as received.
    #[arg(long, allow_hyphen_values = true)]
    timestamp: String,
    /// The webhook-signature header value, as received.
    #[arg(long, allow_hyphen_values = true)]
    signature: String,
    /// Verify as if the clock read this (seconds since the epoch).
    #[arg(long, allow_hyphen_values = true)]
    now: Option<i64>,
    /// Allowed clock difference in seconds, both directions.
    #[arg(long, default_value_t = 300)]
    tolerance: u64,
    /// The raw body, `-` for stdin.
    #[arg(default_value = "-")]
    file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SampleStatus {
    Starting,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

/// Who a delivery looks like it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
enum SenderKind {
    /// Replicate: signed (Standard Webhooks), the full prediction.
    #[default]
    Replicate,
    /// A self-hosted Cog container (coglet 0.23.1): unsigned, an optional bearer token, no
    /// webhook-id, Cog's smaller body.
    Coglet,
}

#[derive(Debug, Args)]
struct SendArgs {
    /// Where to POST the delivery, e.g. http://127.0.0.1:8080/webhooks/replicate.
    url: String,
    /// The signing secret, `whsec_...` (not used with --sender coglet).
    #[arg(long, env = "REPLICATE_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<SecretString>,
    /// Send as Replicate does, or as a self-hosted Cog container (coglet) does.
    #[arg(long, value_enum, default_value_t = SenderKind::Replicate)]
    sender: SenderKind,
    /// With --sender coglet: the bearer token (the container's WEBHOOK_AUTH_TOKEN).
    #[arg(long, env = "REPLICATE_WEBHOOK_COG_TOKEN", hide_env_values = true)]
    cog_token: Option<SecretString>,
    /// The model of the sample [default: replicate/hello-world; with --training, ostris/flux-dev-lora-trainer].
    #[arg(long)]
    model: Option<String>,
    /// Send a sample training (urls under /v1/trainings/, output {version, weights}) instead of a prediction.
    #[arg(long)]
    training: bool,
    /// The status of the sample prediction.
    #[arg(long, value_enum, default_value_t = SampleStatus::Succeeded)]
    status: SampleStatus,
    /// Send this file as the body instead of a sample prediction.
    #[arg(long)]
    body: Option<PathBuf>,
    /// The webhook-id [default: a fresh msg_... id].
    #[arg(long)]
    id: Option<String>,
    /// The prediction id of the sample [default: a fresh one].
    #[arg(long)]
    prediction_id: Option<String>,
    /// Send the same delivery N times in all (same webhook-id, each signed at the current
    /// second, so repeats within one second carry the same timestamp and signature).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// The webhook URL, as you give it to Replicate.
    url: String,
    /// The receiver's signing secret; without it only unsigned checks run.
    #[arg(long, env = "REPLICATE_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<SecretString>,
    /// The events your predictions subscribe to, comma-separated: one sample delivery each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "start,output,logs,completed"
    )]
    events: Vec<String>,
    /// The model of the sample predictions.
    #[arg(long, default_value = "replicate/hello-world")]
    model: String,
    /// The longest answer time that passes.
    #[arg(long, default_value = "5s", value_parser = replicate_webhook_cli::duration::parse)]
    timeout: std::time::Duration,
}

/// Where the Replicate API is.
#[derive(Debug, Clone, Args)]
struct ApiArgs {
    /// The API base URL [default: https://api.replicate.com/v1].
    #[arg(long, env = "REPLICATE_API_BASE_URL")]
    api: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Write a model's OpenAPI schema to DIR/owner/name.json.
    Pull {
        /// `owner/name` (latest version) or `owner/name:version`.
        model: String,
        /// The directory to write into.
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Compare every DIR/owner/name.json with the model's live schema; exit 1 on drift.
    Check {
        /// The directory `schema pull` wrote.
        dir: PathBuf,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PredictionsCommand {
    /// Create a prediction; prints it as JSON.
    Create(api::CreateArgs),
    /// Read a prediction.
    Get {
        /// The prediction id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List predictions, newest first.
    List {
        /// Follow `next` for at most this many pages.
        #[arg(long, default_value_t = 1)]
        pages: usize,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a prediction.
    Cancel {
        /// The prediction id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match cli.command {
        Command::Sign(args) => webhooks::sign(&args),
        Command::Verify(args) => webhooks::verify(&args),
        Command::Send(args) => block_on(webhooks::send(&args)),
        Command::Doctor(args) => block_on(doctor_command::run(&args)),
        Command::Simulate(args) => simulate::run(&args),
        Command::Secret(args) => block_on(api::secret(&args)),
        Command::Schema(SchemaCommand::Pull { model, out, api }) => {
            block_on(schema::pull(&api, &model, &out))
        }
        Command::Schema(SchemaCommand::Check { dir, api }) => block_on(schema::check(&api, &dir)),
        Command::Predictions(command) => block_on(api::predictions(command)),
        Command::Inbox(command) => block_on(inbox::run(command)),
    };
    ExitCode::from(error::exit_code(exit))
}

fn block_on<F: std::future::Future<Output = Exit>>(future: F) -> Exit {
    actix_web::rt::System::new().block_on(future)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn secrets_from_flags_are_redacted_in_debug() {
        use clap::Parser as _;
        let cli = super::Cli::try_parse_from([
            "replicate-webhook",
            "sign",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        let cli = super::Cli::try_parse_from([
            "replicate-webhook",
            "simulate",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "--token",
            "r8_supersecret",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("MfKQ9r8") && !shown.contains("supersecret"),
            "{shown}"
        );
    }
}
