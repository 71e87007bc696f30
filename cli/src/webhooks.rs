//! `sign`, `verify` and `send`.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use replicate_webhook::signature::{self, Verifier, new_message_id, unix_now};
use replicate_webhook::{ConfigError, Secret, parse_secrets};

use crate::{EXIT_INVALID, SendArgs, SignArgs, VerifyArgs, sample, usage_error};

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

pub(crate) fn sign(args: &SignArgs) -> u8 {
    let secret = match signing_secret(args.secret.secret.as_str()) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let body = match read_body(&args.file) {
        Ok(b) => b,
        Err(e) => return usage_error(&e),
    };
    let id = args.id.clone().unwrap_or_else(new_message_id);
    // A line break would turn the three output lines into more; no header can carry it anyway.
    if id.chars().any(char::is_control) {
        return usage_error("--id must not contain control characters");
    }
    let timestamp = args.timestamp.unwrap_or_else(unix_now);
    let headers = signature::sign(&secret, &id, timestamp, &body);
    for (name, value) in headers.pairs() {
        println!("{name}: {value}");
    }
    0
}

pub(crate) fn verify(args: &VerifyArgs) -> u8 {
    let secrets = match secrets(args.secret.secret.as_str()) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let body = match read_body(&args.file) {
        Ok(b) => b,
        Err(e) => return usage_error(&e),
    };
    let verifier = Verifier::new(secrets).tolerance(Duration::from_secs(args.tolerance));
    let now = args.now.unwrap_or_else(unix_now);
    match verifier.verify_at(&args.id, &args.timestamp, &args.signature, &body, now) {
        Ok(()) => {
            println!("valid");
            0
        }
        Err(e) => {
            eprintln!("invalid: {} ({e})", e.reason());
            EXIT_INVALID
        }
    }
}

pub(crate) async fn send(args: &SendArgs) -> u8 {
    let secret = match signing_secret(args.secret.secret.as_str()) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let Some(url) = url::Url::parse(&args.url).ok().filter(url::Url::has_host) else {
        return usage_error(&format!("`{}` is not an absolute URL", args.url));
    };
    let body = if let Some(path) = &args.body {
        match read_body(path) {
            Ok(b) => b,
            Err(e) => return usage_error(&e),
        }
    } else {
        let prediction_id = args
            .prediction_id
            .clone()
            .unwrap_or_else(replicate_webhook::testkit::new_prediction_id);
        let prediction = sample::prediction(&prediction_id, &args.model, args.status, &url);
        serde_json::to_vec(&prediction).unwrap_or_default()
    };
    let id = args.id.clone().unwrap_or_else(new_message_id);
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => return usage_error(&e.to_string()),
    };
    let mut code = 0;
    for _ in 0..args.repeat {
        let headers = signature::sign(&secret, &id, unix_now(), &body);
        let mut request = http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
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
                    println!("{text}");
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
    code
}
