//! A real browser for the tests of web pages: headless Chromium driven through chromedriver by
//! `fantoccini`, with screenshots kept under `target/screenshots/` as test artifacts.
//!
//! [`Browser::start`] follows the rule of [`crate::services`]: when chromedriver or Chromium
//! cannot start, the test skips with the reason on stderr, except under `REQUIRE_SERVICES=1`,
//! where it fails. `CHROMEDRIVER` and `CHROMIUM` override the Debian paths.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session; chromedriver is killed when this is dropped.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    driver: Child,
    // A fresh profile per session, so runs never share cookies, caches or a profile lock.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session.
    ///
    /// Returns `None` (after saying why on stderr) when the browser cannot start; panics instead
    /// under `REQUIRE_SERVICES=1`, so CI never passes by skipping.
    pub async fn start() -> Option<Self> {
        match Self::try_start().await {
            Ok(browser) => Some(browser),
            Err(why) if std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1") => {
                panic!("the browser could not start but REQUIRE_SERVICES=1: {why}")
            }
            Err(why) => {
                eprintln!("skipped: the browser could not start: {why}");
                None
            }
        }
    }

    async fn try_start() -> Result<Self, String> {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let port = crate::process::free_port();
        let mut driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            // A process group of its own: Chromium runs in it, so a test that panics can stop
            // the browser too, not leave it running after chromedriver is gone.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{driver_path}: {e}"))?;
        let webdriver = format!("http://127.0.0.1:{port}");
        if let Err(why) = wait_ready(&webdriver, &mut driver).await {
            stop(&mut driver);
            return Err(why);
        }
        let profile = tempfile::tempdir().map_err(|e| format!("profile dir: {e}"))?;
        let mut caps = Capabilities::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1100,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
        {
            Ok(client) => client,
            Err(e) => {
                stop(&mut driver);
                return Err(format!("new session with {chromium}: {e}"));
            }
        };
        Ok(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// The `WebDriver` client, for navigation and element look-ups.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Replaces the value of the input matching `css` with `text`, typed as a user would.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The text of the first element matching `css`, or `None` when there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.text().await.ok()
    }

    /// Waits (up to `timeout`) until the text of `css` satisfies `done`, and returns it; panics
    /// with the last text seen after a screenshot named `name`-timeout.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        name: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css).await;
            if let Some(text) = text.as_deref()
                && done(text)
            {
                return text.to_owned();
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("{name}-timeout")).await;
                panic!(
                    "{css} never matched within {timeout:?}; last text {text:?}; screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the viewport to `target/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the session (which closes Chromium) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        stop(&mut self.driver);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never reached `close`: neither chromedriver nor Chromium may
        // outlive it.
        stop(&mut self.driver);
    }
}

/// Kills chromedriver's process group (chromedriver and the Chromium it started), then reaps it.
fn stop(driver: &mut Child) {
    let group = format!("-{}", driver.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

/// `target/screenshots/` of the workspace (or of `CARGO_TARGET_DIR`).
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        )
        .join("screenshots")
}

/// Waits until chromedriver answers `GET /status` as ready, or it exits, or 10 s pass.
async fn wait_ready(webdriver: &str, driver: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let http = reqwest::Client::new();
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited at start: {status}"));
        }
        if let Ok(resp) = http.get(format!("{webdriver}/status")).send().await
            && let Ok(body) = resp.json::<serde_json::Value>().await
            && body["value"]["ready"] == true
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("chromedriver did not become ready within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
