//! `sign`, `verify` and `send`.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use replicate_webhook::signature::{self, Verifier, new_message_id, unix_now};
use replicate_webhook::{ConfigError, Secret, parse_secrets};
use secrecy::ExposeSecret as _;

use replicate_webhook_cli::simulator::models::HELLO_WORLD;

use crate::error::{CliError, EXIT_INVALID, Exit};
use crate::{SendArgs, SenderKind, SignArgs, VerifyArgs, sample};
use replicate_webhook::{Event, Status};

/// Reads FILE, or stdin for `-`.
pub(crate) fn read_body(path: &Path) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        Ok(body)
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// Every secret of `--secret` / `REPLICATE_WEBHOOK_SECRET` (spaces or commas between them).
pub(crate) fn secrets(text: &str) -> Result<Vec<Secret>, String> {
    parse_secrets(text).map_err(|e| {
        if let ConfigError::InvalidSecret { position, source } = &e {
            // The runtime's message names the environment variable; here it may be the flag.
            return format!("invalid --secret: secret #{position}: {source}");
        }
        if e == ConfigError::MissingSecret {
            return "invalid --secret: the secret is empty".to_owned();
        }
        format!("invalid --secret: {e}")
    })
}

/// The first secret of `--secret` / `REPLICATE_WEBHOOK_SECRET` (signing uses one key).
pub(crate) fn signing_secret(text: &str) -> Result<Secret, String> {
    let secrets = secrets(text)?;
    secrets
        .into_iter()
        .next()
        .ok_or_else(|| "invalid --secret: empty".to_owned())
}

pub(crate) fn sign(args: &SignArgs) -> Exit {
    let secret = signing_secret(args.secret.secret.expose_secret()).map_err(CliError::Usage)?;
    let body = read_body(&args.file).map_err(CliError::Usage)?;
    let id = args.id.clone().unwrap_or_else(new_message_id);
    // A line break would turn the three output lines into more; no header can carry it anyway.
    if id.chars().any(char::is_control) {
        return Err(CliError::Usage(
            "--id must not contain control characters".to_owned(),
        ));
    }
    let timestamp = args.timestamp.unwrap_or_else(unix_now);
    let headers = signature::sign(&secret, &id, timestamp, &body);
    for (name, value) in headers.pairs() {
        println!("{name}: {value}");
    }
    Ok(0)
}

pub(crate) fn verify(args: &VerifyArgs) -> Exit {
    let secrets = secrets(args.secret.secret.expose_secret()).map_err(CliError::Usage)?;
    let body = read_body(&args.file).map_err(CliError::Usage)?;
    let verifier = Verifier::new(secrets).tolerance(Duration::from_secs(args.tolerance));
    let now = args.now.unwrap_or_else(unix_now);
    match verifier.verify_at(&args.id, &args.timestamp, &args.signature, &body, now) {
        Ok(()) => {
            println!("valid");
            Ok(0)
        }
        Err(e) => {
            // The verdict, not a failure to run: `invalid: ...` on stderr, not `error: ...`.
            eprintln!("invalid: {} ({e})", e.reason());
            Ok(EXIT_INVALID)
        }
    }
}

pub(crate) async fn send(args: &SendArgs) -> Exit {
    let coglet = args.sender == SenderKind::Coglet;
    let secret = match (&args.secret, coglet) {
        (_, true) => None,
        (Some(secret), false) => {
            Some(signing_secret(secret.expose_secret()).map_err(CliError::Usage)?)
        }
        (None, false) => {
            return Err(CliError::Usage(
                "the signing secret is required: --secret or REPLICATE_WEBHOOK_SECRET".to_owned(),
            ));
        }
    };
    let Some(url) = url::Url::parse(&args.url).ok().filter(url::Url::has_host) else {
        return Err(CliError::Usage(format!(
            "`{}` is not an absolute URL",
            args.url
        )));
    };
    let body = if let Some(path) = &args.body {
        read_body(path).map_err(CliError::Usage)?
    } else {
        let prediction_id = args
            .prediction_id
            .clone()
            .unwrap_or_else(replicate_webhook::testkit::new_prediction_id);
        let sample = if args.training {
            let model = args.model.as_deref().unwrap_or(sample::TRAINER);
            sample::training(&prediction_id, model, args.status, &url)
        } else {
            let model = args.model.as_deref().unwrap_or(HELLO_WORLD);
            sample::prediction(&prediction_id, model, args.status, &url)
        };
        let sample = if coglet {
            let event = Status::parse(sample["status"].as_str().unwrap_or_default())
                .event()
                .unwrap_or(Event::Output);
            replicate_webhook_cli::simulator::coglet_body(&sample, event)
        } else {
            sample
        };
        serde_json::to_vec(&sample).unwrap_or_default()
    };
    let id = args.id.clone().unwrap_or_else(new_message_id);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut code = 0;
    for _ in 0..args.repeat {
        let mut request = http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(secret) = &secret {
            for (name, value) in signature::sign(secret, &id, unix_now(), &body).pairs() {
                request = request.header(name, value);
            }
        } else {
            for (name, value) in
                replicate_webhook_cli::simulator::coglet_headers(args.cog_token.as_ref())
            {
                request = request.header(name, value);
            }
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                println!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                );
                if !text.is_empty() {
                    // The answer is the receiver's: it may carry terminal escape codes.
                    println!("{}", replicate_webhook_cli::terminal_safe(&text));
                }
                code = if status.is_success() { 0 } else { EXIT_INVALID };
            }
            Err(e) => {
                eprintln!(
                    "error: the request failed: {}",
                    replicate_webhook_cli::describe_error(e)
                );
                code = EXIT_INVALID;
            }
        }
    }
    Ok(code)
}
