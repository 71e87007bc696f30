//! Secret hygiene of the example binaries: quickstart, send-test-delivery and flux run with a
//! known signing secret, a known API token and `REPLICATE_WEBHOOK_STORE` holding a password,
//! with debug logging, and nothing they print may contain any of them
//! (`replicate_webhook_tests::hygiene::Forbidden` lists the forms checked).
//!
//! Printed on purpose, and so excluded: quickstart and flux print a generated development
//! secret when `REPLICATE_WEBHOOK_SECRET` is unset. Every run below sets it (or, for flux, fetches
//! the known secret from the API), so that exclusion never applies here and nothing is skipped.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use replicate_webhook::Secret;
use replicate_webhook_cli::simulator::{self, Script};
use replicate_webhook_tests::hygiene::{Forbidden, Known, STORE_WITH_PASSWORD, labelled, printed};

/// `program` with the secret and the token in its environment, and no store.
fn command(k: &Known, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("REPLICATE_WEBHOOK_SECRET", &k.secret)
        .env("REPLICATE_API_TOKEN", &k.token)
        .env("RUST_LOG", "debug")
        .env_remove("REPLICATE_WEBHOOK_STORE")
        .env_remove("PUBLIC_URL")
        // The quickstart's default store is a SQLite file in the working directory.
        .current_dir(work_dir())
        .stdin(Stdio::null());
    cmd
}

/// One working directory for every binary of this test file, so the quickstart's default
/// SQLite store lands in a temporary folder, not in the repository.
fn work_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child whose output lines arrive on channels and whose whole output is kept.
struct Running {
    child: std::process::Child,
    stdout_lines: mpsc::Receiver<String>,
    stderr_lines: mpsc::Receiver<String>,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

/// Reads `pipe` to its end, sending each line, and returns all of it.
fn collect(
    pipe: impl std::io::Read + Send + 'static,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let (tx, rx) = mpsc::channel();
    let all = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    (rx, all)
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout_lines, stdout) = collect(child.stdout.take().unwrap());
        let (stderr_lines, stderr) = collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout_lines,
            stderr_lines,
            stdout,
            stderr,
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for_stderr(&self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(e) => panic!("no stderr line containing {needle:?}: {e}"),
            }
        }
    }

    /// Waits until the child closes stderr (it exits), at most 30 s, and returns how it ended.
    /// Kills it (if still running) and returns all it printed.
    fn finish(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        labelled(&self.stdout.join().unwrap(), &self.stderr.join().unwrap())
    }
}

fn send_test_delivery(k: &Known, url: &str, secret: &str) -> String {
    let out = command(k, env!("CARGO_BIN_EXE_send-test-delivery"))
        .env("REPLICATE_WEBHOOK_SECRET", secret)
        .args([url, "succeeded", "replicate/hello-world"])
        .output()
        .unwrap();
    k.forbidden
        .assert_absent("send-test-delivery", &printed(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn quickstart_and_send_test_delivery_print_no_secret() {
    let k = Known::generate();

    // With a Redis URL holding a password: the store connects lazily, so the quickstart serves
    // and answers 503 while Redis (here a port that refuses) is unreachable. Its banner, its
    // logs and its answers show the URL without the password.
    let port = free_port();
    let mut cmd = command(&k, env!("CARGO_BIN_EXE_quickstart"));
    cmd.env("REPLICATE_WEBHOOK_STORE", STORE_WITH_PASSWORD)
        .env("BIND", format!("127.0.0.1:{port}"));
    let q = Running::spawn(cmd);
    q.wait_for_stderr("listening on");
    let url = format!("http://127.0.0.1:{port}/webhooks/replicate");
    assert!(send_test_delivery(&k, &url, &k.secret).starts_with("503 "));
    let all = q.finish();
    assert!(
        all.contains("dedupe store redis://admin:***@127.0.0.1:1/0"),
        "{all}"
    );
    k.forbidden
        .assert_absent("quickstart (store with a password)", &all);

    // A refused secret that holds the password.
    let out = command(&k, env!("CARGO_BIN_EXE_quickstart"))
        .env("REPLICATE_WEBHOOK_SECRET", "whsec_hunter2hunter2!!")
        .env("BIND", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    k.forbidden
        .assert_absent("quickstart (refused secret)", &printed(&out));

    // Serving: one accepted delivery, one signed with another key, one to a closed port.
    let port = free_port();
    let mut cmd = command(&k, env!("CARGO_BIN_EXE_quickstart"));
    cmd.env("BIND", format!("127.0.0.1:{port}"));
    let q = Running::spawn(cmd);
    q.wait_for_stderr("listening on");
    let url = format!("http://127.0.0.1:{port}/webhooks/replicate");
    assert!(send_test_delivery(&k, &url, &k.secret).starts_with("200 "));
    let line = q
        .stdout_lines
        .recv_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(line.starts_with("on_succeeded id="), "{line}");
    let other = Secret::generate().expose();
    assert!(send_test_delivery(&k, &url, &other).starts_with("401 "));
    send_test_delivery(&k, "http://127.0.0.1:1/webhooks/replicate", &k.secret);
    k.forbidden.assert_absent("quickstart", &q.finish());
}

fn start_simulator(k: &Known) -> simulator::Running {
    let mut config = simulator::Config::new(Secret::parse(&k.secret).unwrap());
    config.token = Some(k.token.clone().into());
    config.schemas = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas").into());
    config.script = Script {
        start_delay: Duration::from_millis(20),
        steps: 1,
        step: Duration::from_millis(20),
        ..Script::default()
    };
    config.verbose = false;
    common::serve_simulator(config)
}

#[test]
fn flux_prints_no_secret() {
    let k = Known::generate();
    let sim = start_simulator(&k);
    // With the secret given, then fetched from the API with the token.
    for given in [true, false] {
        let mut cmd = command(&k, env!("CARGO_BIN_EXE_flux"));
        cmd.arg("a fox in the snow")
            .env("BIND", format!("127.0.0.1:{}", free_port()))
            .env("REPLICATE_API_BASE_URL", &sim.api_base);
        if !given {
            cmd.env_remove("REPLICATE_WEBHOOK_SECRET");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", printed(&out));
        k.forbidden
            .assert_absent(&format!("flux (secret given: {given})"), &printed(&out));
    }
    // A wrong token: the API refuses it, and neither token is printed.
    let out = command(&k, env!("CARGO_BIN_EXE_flux"))
        .arg("a fox in the snow")
        .env("BIND", format!("127.0.0.1:{}", free_port()))
        .env("REPLICATE_API_BASE_URL", &sim.api_base)
        .env("REPLICATE_API_TOKEN", "r8_wrongtoken")
        .env_remove("REPLICATE_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", printed(&out));
    k.forbidden
        .assert_absent("flux (wrong token)", &printed(&out));
    Forbidden::new()
        .text("the wrong token", "r8_wrongtoken")
        .assert_absent("flux (wrong token)", &printed(&out));
}
