//! The flux-schnell example end to end: the example binary creates a typed prediction against the
//! local simulator (run in this process, on 127.0.0.1), and receives its signed webhooks.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use replicate_webhook::Secret;
use replicate_webhook_cli::simulator::{self, Script};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn start_simulator() -> simulator::Running {
    let mut config = simulator::Config::new(Secret::parse(SECRET).unwrap());
    config.schemas = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas").into());
    config.script = Script {
        start_delay: Duration::from_millis(50),
        steps: 2,
        step: Duration::from_millis(100),
        ..Script::default()
    };
    common::serve_simulator(config)
}

#[test]
fn creates_a_typed_prediction_and_receives_its_images() {
    let sim = start_simulator();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_flux"))
        .arg("a fox in the snow")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("REPLICATE_API_BASE_URL", &sim.api_base)
        .env("REPLICATE_API_TOKEN", "r8_test")
        .env("REPLICATE_WEBHOOK_SECRET", SECRET)
        .env_remove("PUBLIC_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("on_start id="), "{stdout}");
    assert!(
        lines[0].contains(r#"prompt="a fox in the snow" aspect_ratio=16:9 num_outputs=2"#),
        "{stdout}"
    );
    assert!(lines[1].starts_with("on_succeeded id="), "{stdout}");
    // The typed output is a list of URLs; the simulator made one image per step.
    assert!(lines[1].contains(" images=2 first=http"), "{stdout}");
}
