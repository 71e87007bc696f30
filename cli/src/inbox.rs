//! `inbox list|show|replay|discard`: look into an inbox and act on its dead jobs. Never prints
//! the inbox URL's password, and shows a job's body (the prediction, with its input) only on
//! `show --body`.

use clap::{Args, Subcommand};
use replicate_webhook::inbox::{Filter, Inbox, Job, JobState};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::{CliError, EXIT_INVALID, Exit};

/// Where the inbox is.
#[derive(Debug, Args)]
pub(crate) struct InboxArg {
    /// The inbox: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, env = "REPLICATE_WEBHOOK_INBOX", hide_env_values = true)]
    inbox: SecretString,
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// List jobs, newest first, and the backlog.
    List {
        #[command(flatten)]
        inbox: InboxArg,
        /// Only jobs in this state: pending, running, done, dead, discarded.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this model (owner/name).
        #[arg(long)]
        model: Option<String>,
        /// Only jobs of this prediction.
        #[arg(long)]
        prediction: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one job.
    Show {
        #[command(flatten)]
        inbox: InboxArg,
        /// The job id.
        id: i64,
        /// Also print the body (the prediction, with its input).
        #[arg(long)]
        body: bool,
    },
    /// Run dead jobs again, with their attempts reset: one by id, or all with --all.
    Replay {
        #[command(flatten)]
        inbox: InboxArg,
        /// The job id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead job.
        #[arg(long)]
        all: bool,
    },
    /// Drop a pending or dead job for good; its deliveries stay deduplicated.
    Discard {
        #[command(flatten)]
        inbox: InboxArg,
        /// The job id.
        id: i64,
    },
}

pub(crate) async fn run(command: InboxCommand) -> Exit {
    match command {
        InboxCommand::List {
            inbox,
            state,
            model,
            prediction,
            limit,
        } => {
            let state = state
                .map(|s| {
                    JobState::parse(&s).ok_or_else(|| {
                        CliError::Usage(format!(
                            "unknown state `{s}`; expected pending, running, done, dead or discarded"
                        ))
                    })
                })
                .transpose()?;
            let inbox = open(&inbox)?;
            let filter = Filter {
                state,
                model,
                prediction_id: prediction,
                limit,
            };
            let jobs = inbox.list(&filter).await.map_err(failed)?;
            println!(
                "{:>8}  {:<9}  {:>3}  {:<26}  {:<14}  MODEL / LAST ERROR",
                "ID", "STATE", "TRY", "PREDICTION", "HANDLER"
            );
            for job in &jobs {
                println!(
                    "{:>8}  {:<9}  {:>3}  {:<26}  {:<14}  {}{}",
                    job.id,
                    job.state,
                    job.attempts,
                    job.prediction_id,
                    job.handler,
                    job.model,
                    job.last_error
                        .as_deref()
                        .map(|e| format!(" / {}", one_line(e, 80)))
                        .unwrap_or_default()
                );
            }
            let backlog = inbox.backlog().await.map_err(failed)?;
            println!(
                "backlog: {} pending, {} running, {} dead, {} attempts, oldest pending {}",
                backlog.pending,
                backlog.running,
                backlog.dead,
                backlog.attempts,
                backlog.oldest_pending.map_or_else(
                    || "none".to_owned(),
                    |age| humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
                        .to_string()
                )
            );
            Ok(0)
        }
        InboxCommand::Show { inbox, id, body } => {
            let job = open(&inbox)?.get(id).await.map_err(failed)?;
            let Some(job) = job else {
                eprintln!("no job {id}");
                return Ok(EXIT_INVALID);
            };
            show(&job, body);
            Ok(0)
        }
        InboxCommand::Replay { inbox, id, all } => {
            let changed = open(&inbox)?
                .replay(if all { None } else { id })
                .await
                .map_err(failed)?;
            println!("{changed} dead job(s) replayed");
            Ok(if changed == 0 && !all {
                EXIT_INVALID
            } else {
                0
            })
        }
        InboxCommand::Discard { inbox, id } => {
            if open(&inbox)?.discard(id).await.map_err(failed)? {
                println!("job {id} discarded");
                Ok(0)
            } else {
                eprintln!("no pending or dead job {id}");
                Ok(EXIT_INVALID)
            }
        }
    }
}

fn open(arg: &InboxArg) -> Result<Inbox, CliError> {
    Inbox::open_url(arg.inbox.expose_secret()).map_err(|e| CliError::Usage(format!("--inbox: {e}")))
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(failed)`
fn failed(e: replicate_webhook::dedupe::StoreError) -> CliError {
    CliError::Failed(e.to_string())
}

fn one_line(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line
    }
}

fn show(job: &Job, body: bool) {
    let at = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| ms.to_string())
    };
    println!("job:         {}", job.id);
    println!("state:       {}", job.state);
    println!("attempts:    {}", job.attempts);
    println!("module:      {}", job.module);
    println!("model:       {}", job.model);
    println!("prediction:  {}", job.prediction_id);
    println!("status:      {}", job.status);
    println!("handler:     {}", job.handler);
    println!("webhook-id:  {}", job.webhook_id);
    println!("path:        {}", job.uri);
    println!("received:    {}", at(job.received_ms));
    println!("next run:    {}", at(job.run_at_ms));
    println!("last error:  {}", job.last_error.as_deref().unwrap_or("-"));
    for (name, value) in &job.headers {
        // The signature proves nothing once stored; it is not a secret but adds only noise.
        if name != "webhook-signature" {
            println!("header:      {name}: {value}");
        }
    }
    if body {
        match serde_json::from_slice::<serde_json::Value>(&job.body) {
            Ok(json) => println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            ),
            Err(_) => println!("{}", String::from_utf8_lossy(&job.body)),
        }
    } else {
        println!("body:        {} bytes (--body prints it)", job.body.len());
    }
}
