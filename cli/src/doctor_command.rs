//! `doctor`: the command line around [`replicate_webhook_cli::doctor`].

use replicate_webhook::Event;
use replicate_webhook_cli::doctor::{self, Options};
use secrecy::ExposeSecret as _;

use crate::DoctorArgs;
use crate::error::{CliError, EXIT_INVALID, Exit};
use crate::webhooks::signing_secret;

pub(crate) async fn run(args: &DoctorArgs) -> Exit {
    let url = url::Url::parse(&args.url)
        .map_err(|e| CliError::Usage(format!("`{}` is not a URL: {e}", args.url)))?;
    let mut options = Options::new(url);
    options.model.clone_from(&args.model);
    options.timeout = args.timeout;
    let events = args
        .events
        .iter()
        .map(|e| {
            Event::parse(e.trim()).ok_or_else(|| {
                CliError::Usage(format!(
                    "unknown event `{e}`; expected start, output, logs or completed"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    options = options.events(events);
    if let Some(secret) = &args.secret {
        options = options.secret(signing_secret(secret.expose_secret()).map_err(CliError::Usage)?);
    }
    let report = doctor::run(&options).await;
    println!("{report}");
    Ok(if report.passed() { 0 } else { EXIT_INVALID })
}
