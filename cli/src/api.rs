//! Commands that call the Replicate API: `secret` and `predictions ...`.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use clap::Args;
use replicate_webhook::Event;
use replicate_webhook::client::{
    Client, ClientError, CreatePrediction, DEFAULT_BASE_URL, ENV_TOKEN, Target,
};
use serde_json::Value;

use crate::error::{CliError, Exit};
use crate::{ApiArgs, PredictionsCommand};

/// Builds a client from `--api` / `REPLICATE_API_BASE_URL` and `REPLICATE_API_TOKEN`.
///
/// Against a loopback address (the simulator) a missing token is replaced by a placeholder.
pub(crate) fn client(args: &ApiArgs) -> Result<Client, ClientError> {
    let base = args
        .api
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .unwrap_or(DEFAULT_BASE_URL);
    let mut token = std::env::var(ENV_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty());
    if token.is_none() && is_loopback(base) {
        token = Some("simulator".to_owned());
    }
    if token.is_none() {
        return Err(ClientError::MissingToken);
    }
    Client::new(base, token)
}

fn is_loopback(base: &str) -> bool {
    url::Url::parse(base).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

pub(crate) async fn secret(args: &ApiArgs) -> Exit {
    let secret = client(args)?.default_secret().await?;
    // The user asked for it: this is the one place the secret is printed.
    println!("{}", secret.expose());
    Ok(0)
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["model", "version", "deployment"])))]
pub(crate) struct CreateArgs {
    /// Run an official model `owner/name` (POST /models/{owner}/{name}/predictions).
    #[arg(long)]
    model: Option<String>,
    /// Run a version: `{id}`, `owner/name:{id}` or `owner/name` (POST /predictions).
    #[arg(long)]
    version: Option<String>,
    /// Run on a deployment `owner/name` (POST /deployments/{owner}/{name}/predictions).
    #[arg(long)]
    deployment: Option<String>,
    /// An input field `key=value`; the value is read as JSON when it parses, else as text.
    #[arg(long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,
    /// The whole input as a JSON object (merged under the --input fields).
    #[arg(long, value_name = "JSON")]
    input_json: Option<String>,
    /// The webhook URL, sent exactly as given.
    #[arg(long)]
    webhook: Option<String>,
    /// `webhook_events_filter`, comma-separated: start,output,logs,completed.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Send `Prefer: wait` (or `wait=N` seconds, 1 to 60).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "0")]
    wait: Option<u64>,
    /// Send `Cancel-After`, e.g. `30s`, `5m`.
    #[arg(long, value_name = "DURATION")]
    cancel_after: Option<String>,
    /// Poll until the prediction finishes, then print its final state.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    api: ApiArgs,
}

fn build_input(args: &CreateArgs) -> Result<Value, String> {
    let mut input = match &args.input_json {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err("--input-json must be a JSON object".into()),
        },
        None => serde_json::Map::new(),
    };
    for field in &args.inputs {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("--input `{field}` must look like key=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        input.insert(key.to_owned(), value);
    }
    Ok(Value::Object(input))
}

fn build_request(args: &CreateArgs) -> Result<CreatePrediction<Value>, String> {
    let input = build_input(args)?;
    let mut request = match (&args.model, &args.version, &args.deployment) {
        (Some(model), _, _) => CreatePrediction::model(model, input),
        (_, Some(version), _) => CreatePrediction::new(Target::Version(version.clone()), input),
        (_, _, Some(deployment)) => CreatePrediction::deployment(deployment, input),
        _ => return Err("give --model, --version or --deployment".into()),
    };
    let events: Vec<Event> = args
        .events
        .iter()
        .map(|e| Event::parse(e.trim()).ok_or_else(|| format!("unknown event `{e}`")))
        .collect::<Result<_, _>>()?;
    if let Some(webhook) = &args.webhook {
        let url = url::Url::parse(webhook).map_err(|e| format!("--webhook: {e}"))?;
        let events = if events.is_empty() {
            Event::ALL.to_vec()
        } else {
            events
        };
        request = request.webhook(url, events);
    } else if !events.is_empty() {
        return Err("--events needs --webhook".into());
    }
    if let Some(wait) = args.wait {
        request = request.wait((wait > 0).then_some(wait));
    }
    if let Some(after) = &args.cancel_after {
        request = request.cancel_after_text(after.clone());
    }
    Ok(request)
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub(crate) async fn predictions(command: PredictionsCommand) -> Exit {
    match command {
        PredictionsCommand::Create(args) => return create(&args).await,
        PredictionsCommand::Get { id, api } => print_json(&client(&api)?.get(&id).await?),
        PredictionsCommand::Cancel { id, api } => print_json(&client(&api)?.cancel(&id).await?),
        PredictionsCommand::List { pages, api } => {
            print_json(&client(&api)?.list_all(pages.max(1)).await?);
        }
    }
    Ok(0)
}

async fn create(args: &CreateArgs) -> Exit {
    let request = build_request(args).map_err(CliError::Usage)?;
    let client = client(&args.api)?;
    let ticker = args
        .wait
        .map(|_| Ticker::start("waiting for the prediction (Prefer: wait)".to_owned()));
    let created = client.create(&request).await;
    drop(ticker);
    let prediction = created?;
    if args.follow && !prediction.status.is_terminal() {
        print_json(&follow(&client, &prediction.id).await?);
    } else {
        print_json(&prediction);
    }
    Ok(0)
}

/// Shows `label (seconds)` on stderr while a long call runs, only when stderr is a terminal.
struct Ticker {
    stop: std::rc::Rc<std::cell::Cell<bool>>,
    tty: bool,
}

impl Ticker {
    fn start(label: String) -> Self {
        let stop = std::rc::Rc::new(std::cell::Cell::new(false));
        let tty = std::io::stderr().is_terminal();
        if tty {
            let stop = stop.clone();
            let started = Instant::now();
            actix_web::rt::spawn(async move {
                loop {
                    actix_web::rt::time::sleep(Duration::from_millis(250)).await;
                    if stop.get() {
                        break;
                    }
                    eprint!("\r{label} ({:.1}s)\x1b[K", started.elapsed().as_secs_f64());
                }
            });
        }
        Self { stop, tty }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.set(true);
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

/// Polls until terminal; shows progress on stderr when it is a terminal.
async fn follow(client: &Client, id: &str) -> Result<replicate_webhook::Prediction, ClientError> {
    const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut frame = 0usize;
    loop {
        let prediction = client.get(id).await?;
        if tty {
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r{} {id} {} ({:.1}s)   ",
                FRAMES[frame % FRAMES.len()],
                prediction.status,
                started.elapsed().as_secs_f64()
            );
            let _ = err.flush();
            frame += 1;
        }
        if prediction.status.is_terminal() {
            if tty {
                eprintln!();
            }
            return Ok(prediction);
        }
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    }
}
