//! Cog's own webhook sender, for the tests: deliveries shaped as coglet sends them, and a real
//! coglet (from the virtualenv `scripts/cog-deps` fills) running `tests/cog/predict.py`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A POST as coglet 0.23.1 makes it: JSON, `User-Agent: coglet/0.23.1`, the bearer token when
/// the container has one, and no `webhook-*` headers (`replicate-protocol.md` §12).
pub async fn post(url: &str, token: Option<&str>, body: &serde_json::Value) -> reqwest::Response {
    post_with(url, token, body, &[]).await
}

/// Like [`post`], with extra headers (`traceparent`, say).
pub async fn post_with(
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "coglet/0.23.1")
        .body(body.to_string());
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request to the test server")
}

/// The virtualenv holding `cog` and `coglet`, or `None` after saying why the calling test skips.
///
/// Panics when `REQUIRE_SERVICES=1` and there is none: CI must never pass by skipping.
pub fn venv() -> Option<PathBuf> {
    let venv = std::env::var_os("COG_VENV").map(PathBuf::from);
    let usable = venv.as_ref().is_some_and(|dir| {
        Command::new(dir.join("bin/python"))
            .args(["-c", "import cog, coglet"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    match venv {
        Some(dir) if usable => Some(dir),
        _ if std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1") => panic!(
            "COG_VENV does not hold cog and coglet but REQUIRE_SERVICES=1: run the tests through \
             scripts/with-services, or `scripts/cog-deps DIR` and COG_VENV=DIR"
        ),
        _ => {
            eprintln!(
                "skipped: COG_VENV is unset or lacks cog and coglet (`scripts/cog-deps DIR`, then \
                 COG_VENV=DIR; scripts/with-services does both)"
            );
            None
        }
    }
}

/// A real Cog model server (coglet) serving `tests/cog/predict.py`, killed when dropped.
#[derive(Debug)]
pub struct Container {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    /// Held while the container runs: see [`ONE_AT_A_TIME`].
    _alone: std::sync::MutexGuard<'static, ()>,
}

/// One coglet at a time in a test process. Two started together by parallel tests from the same
/// model directory mixed up their predictions' webhooks (a test saw another prediction's events
/// go to another test's receiver), which made the real-sender tests fail now and then.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Container {
    /// Starts coglet from `venv` on a free port; its webhooks carry `token` when given.
    pub fn start(venv: &Path, token: Option<&str>) -> Self {
        let alone = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = crate::process::free_port();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cog");
        // coglet runs the predictor in a worker subprocess found on PATH: the venv's python.
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(venv.join("bin/python"));
        command
            .args([
                "-c",
                &format!(
                    "import coglet; coglet.server.serve('predict.py:Predictor', '127.0.0.1', {port})"
                ),
            ])
            .current_dir(&dir)
            .env("PATH", path)
            .env_remove("WEBHOOK_AUTH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(token) = token {
            command.env("WEBHOOK_AUTH_TOKEN", token);
        }
        let child = command.spawn().expect("start coglet");
        Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _alone: alone,
        }
    }

    /// Waits until the model's setup is done (`GET /health-check` says `READY`).
    pub async fn ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(resp) = client
                .get(format!("{}/health-check", self.base))
                .send()
                .await
                && resp.text().await.is_ok_and(|t| t.contains("\"READY\""))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "coglet at {} did not become ready within a minute",
            self.base
        );
    }

    /// Starts a prediction with `input` whose webhooks go to `webhook` (`Prefer: respond-async`).
    pub async fn predict(
        &self,
        id: &str,
        input: serde_json::Value,
        webhook: &str,
        events: &[&str],
        traceparent: Option<&str>,
    ) {
        let body = serde_json::json!({
            "id": id,
            "input": input,
            "webhook": webhook,
            "webhook_events_filter": events,
        });
        let mut req = reqwest::Client::new()
            .post(format!("{}/predictions", self.base))
            .header("prefer", "respond-async")
            .json(&body);
        if let Some(traceparent) = traceparent {
            req = req.header("traceparent", traceparent);
        }
        let resp = req.send().await.expect("POST /predictions");
        assert!(
            resp.status().is_success(),
            "POST /predictions: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
