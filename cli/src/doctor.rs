//! `replicate-webhook doctor URL`: checks an endpoint the way Replicate will use it, and says
//! for each thing that would keep a webhook from arriving what to change.
//!
//! The report is one line per check, `<level> <check>: <what was seen>[; <the fix>]`, with
//! `level` one of `ok`, `warn`, `FAIL`, `skip`, then a summary line. Only `FAIL` makes the
//! command exit 1; a warning (e.g. a loopback address Replicate cannot reach) does not, so the
//! command is useful against a receiver on the developer's machine.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use replicate_webhook::signature::{self, new_message_id, unix_now};
use replicate_webhook::testkit::{new_prediction_id, sample_prediction};
use replicate_webhook::{Event, Secret};
use serde_json::{Value, json};

/// How long Replicate waits for an answer: "a few seconds" in its docs; the simulator's
/// `--delivery-timeout` default is the same.
pub const REPLICATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The exact words for a redirect: Replicate's docs say it follows none.
pub const REDIRECT_FIX: &str = "Replicate does not follow redirects; use the final URL";

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The webhook URL, as it would be given to Replicate.
    pub url: url::Url,
    /// The receiver's signing secret; without it no signed delivery can be sent.
    pub secret: Option<Secret>,
    /// The events the predictions subscribe to: one signed sample delivery each.
    pub events: Vec<Event>,
    /// The model of the sample predictions.
    pub model: String,
    /// The longest answer time that passes.
    pub timeout: Duration,
}

impl Options {
    /// Every event, the hello-world model, Replicate's timeout.
    pub fn new(url: url::Url) -> Self {
        Self {
            url,
            secret: None,
            events: Event::ALL.to_vec(),
            model: "replicate/hello-world".to_owned(),
            timeout: REPLICATE_TIMEOUT,
        }
    }

    /// Signs the sample deliveries with `secret`.
    #[must_use]
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Sends one sample delivery per event in `events`.
    #[must_use]
    pub fn events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        self.events = events.into_iter().collect();
        self
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What Replicate needs holds.
    Ok,
    /// It works here but not for Replicate, or it cannot be told from outside.
    Warn,
    /// A webhook would not arrive, or would not be handled.
    Fail,
    /// Not checked, because of an earlier failure or a missing `--secret`.
    Skip,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
            Self::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// How it came out.
    pub level: Level,
    /// What was checked: `url`, `dns`, `reachable`, `tcp`, `https`, `tls`, `redirect`,
    /// `signature`, `delivery <event>`, `replay`, `response time`.
    pub name: String,
    /// What was seen and, for a warning or failure, the fix.
    pub message: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4} {}: {}",
            self.level.as_str(),
            self.name,
            self.message
        )
    }
}

/// Every check, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The lines.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (warnings pass).
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.level == Level::Fail)
    }

    /// The check named `name`, if it ran.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn push(&mut self, level: Level, name: &str, message: impl Into<String>) {
        self.checks.push(Check {
            level,
            name: name.to_owned(),
            message: message.into(),
        });
    }

    fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        let warnings = self.count(Level::Warn);
        write!(
            f,
            "doctor: {} ok, {warnings} warning{}, {} failed, {} skipped",
            self.count(Level::Ok),
            if warnings == 1 { "" } else { "s" },
            self.count(Level::Fail),
            self.count(Level::Skip)
        )
    }
}

/// Why an address is one Replicate cannot reach, if it is.
fn unreachable_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some("a private address")
            } else if v4.is_link_local() || v4.is_unspecified() {
                Some("a link-local address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return unreachable_kind(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private address")
            } else if first & 0xffc0 == 0xfe80 || v6.is_unspecified() {
                Some("a link-local address")
            } else {
                None
            }
        }
    }
}

/// Runs every check against `options.url`.
pub async fn run(options: &Options) -> Report {
    let mut report = Report::default();
    if let Some((addrs, local)) = reach(options, &mut report).await {
        let first = addrs[0];
        if connect(options, first, &mut report).await {
            https(options, local, &mut report);
            Doctor::new(options, local, &mut report).deliveries().await;
        }
    }
    report
}

/// URL, DNS and reachability; the addresses and whether Replicate cannot reach them.
async fn reach(options: &Options, report: &mut Report) -> Option<(Vec<SocketAddr>, bool)> {
    let url = &options.url;
    if !matches!(url.scheme(), "http" | "https") {
        report.push(
            Level::Fail,
            "url",
            format!(
                "scheme `{}`; Replicate posts only to https URLs",
                url.scheme()
            ),
        );
        return None;
    }
    let Some(host) = url.host_str() else {
        report.push(
            Level::Fail,
            "url",
            format!("`{url}` has no host; give the full URL, e.g. https://example.com/webhooks/replicate"),
        );
        return None;
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((bare, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            report.push(
                Level::Fail,
                "dns",
                format!(
                    "cannot resolve {host}: {e}; publish a DNS record for it or fix the host name"
                ),
            );
            return None;
        }
    };
    if addrs.is_empty() {
        report.push(
            Level::Fail,
            "dns",
            format!("{host} has no address; publish an A or AAAA record for it"),
        );
        return None;
    }
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    report.push(
        Level::Ok,
        "dns",
        format!("{host} resolves to {}", shown.join(", ")),
    );
    let lower = host.to_ascii_lowercase();
    let kind = addrs
        .iter()
        .find_map(|a| unreachable_kind(a.ip()))
        .or_else(|| {
            (lower == "localhost" || lower.ends_with(".localhost")).then_some("a local name")
        });
    if let Some(kind) = kind {
        report.push(
            Level::Warn,
            "reachable",
            format!(
                "{host} is {kind}, which Replicate cannot reach: fine for local tests; give Replicate a public https URL (e.g. through a tunnel)"
            ),
        );
    }
    Some((addrs, kind.is_some()))
}

/// TCP: a firewall or a stopped receiver shows here, before any HTTP.
async fn connect(options: &Options, addr: SocketAddr, report: &mut Report) -> bool {
    let started = Instant::now();
    match tokio::time::timeout(options.timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => {
            report.push(
                Level::Ok,
                "tcp",
                format!("connected to {addr} in {}", ms(started.elapsed())),
            );
            true
        }
        Ok(Err(e)) => {
            report.push(
                Level::Fail,
                "tcp",
                format!("cannot connect to {addr}: {e}; start the receiver on that port, or open the port in the firewall"),
            );
            false
        }
        Err(_) => {
            report.push(
                Level::Fail,
                "tcp",
                format!(
                    "no answer from {addr} within {}; a firewall drops the connection: open port {}",
                    limit(options.timeout),
                    addr.port()
                ),
            );
            false
        }
    }
}

fn https(options: &Options, local: bool, report: &mut Report) {
    if options.url.scheme() == "https" {
        report.push(Level::Ok, "https", "the URL is https");
    } else if local {
        report.push(
            Level::Warn,
            "https",
            "plain http, fine locally; Replicate needs an https URL",
        );
    } else {
        report.push(
            Level::Fail,
            "https",
            "plain http; Replicate posts only to https URLs: serve the endpoint with TLS and use https://",
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A limit as the user wrote it: `5s`, not `5000ms`.
fn limit(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// What one request got.
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
    took: Duration,
}

/// The HTTP half of the checks: the mis-signed delivery, the signed ones, the replay.
struct Doctor<'a> {
    options: &'a Options,
    report: &'a mut Report,
    http: reqwest::Client,
    slowest: Duration,
    sent: usize,
}

impl<'a> Doctor<'a> {
    fn new(options: &'a Options, local: bool, report: &'a mut Report) -> Self {
        // A local receiver with a self-signed certificate is a development setup, not a fault.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .danger_accept_invalid_certs(local)
            .build()
            .unwrap_or_default();
        Self {
            options,
            report,
            http,
            slowest: Duration::ZERO,
            sent: 0,
        }
    }

    /// The sample body of `event` for one prediction id.
    fn body(&self, prediction: &str, event: Event) -> Vec<u8> {
        let hello = self.options.model == "replicate/hello-world";
        let file = json!([format!(
            "https://replicate.delivery/doctor/{prediction}/out-0.webp"
        )]);
        let (status, output) = match event {
            Event::Start => ("starting", Value::Null),
            Event::Output | Event::Logs if hello => ("processing", json!("hello")),
            Event::Completed if hello => ("succeeded", json!("hello doctor")),
            Event::Output | Event::Logs => ("processing", file),
            Event::Completed => ("succeeded", file),
        };
        let mut body = sample_prediction(prediction, &self.options.model, status, output);
        if hello {
            body["input"] = json!({"text": "doctor"});
        }
        if event == Event::Logs {
            // Same output as the output event, more logs: a receiver that tells the two apart
            // by the output sees logs.
            body["logs"] = json!("Generating...\nstill generating\n");
        }
        body["webhook"] = json!(self.options.url.as_str());
        let events: Vec<&str> = self.options.events.iter().map(|e| e.as_str()).collect();
        body["webhook_events_filter"] = json!(events);
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Posts `body` signed with `secret`. A redirect, a TLS failure or no answer is recorded
    /// (under `name` or its own check) and gives `None`: every later request would end the same.
    async fn post(&mut self, name: &str, secret: &Secret, id: &str, body: &[u8]) -> Option<Answer> {
        let headers = signature::sign(secret, id, unix_now(), body);
        let mut request = self
            .http
            .post(self.options.url.clone())
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (header, value) in headers.pairs() {
            request = request.header(header, value);
        }
        let started = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let location = response
                    .headers()
                    .get("location")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let body = response.text().await.unwrap_or_default();
                Answer {
                    status,
                    location,
                    body,
                    took: started.elapsed(),
                }
            }
            Err(e) => {
                self.failed_request(name, e);
                return None;
            }
        };
        self.sent += 1;
        self.slowest = self.slowest.max(answer.took);
        if (300..400).contains(&answer.status) {
            let to = answer
                .location
                .as_deref()
                .map(|l| format!(" to {}", shown(l)))
                .unwrap_or_default();
            self.report.push(
                Level::Fail,
                "redirect",
                format!("{}{to}; {REDIRECT_FIX}", answer.status),
            );
            return None;
        }
        Some(answer)
    }

    fn failed_request(&mut self, name: &str, e: reqwest::Error) {
        let timeout = e.is_timeout();
        let text = replicate_webhook_core::error_chain(&e.without_url());
        let lower = text.to_ascii_lowercase();
        if timeout {
            self.report.push(
                Level::Fail,
                name,
                format!(
                    "no answer within {}; Replicate gives up and retries: answer 2xx at once and do slow work afterwards",
                    limit(self.options.timeout)
                ),
            );
        } else if lower.contains("certificate") || lower.contains("tls") {
            self.report.push(
                Level::Fail,
                "tls",
                format!("{text}; serve a certificate from a public CA (e.g. Let's Encrypt) that covers the host name"),
            );
        } else {
            self.report.push(
                Level::Fail,
                name,
                format!(
                    "the request failed: {text}; check that the receiver serves HTTP on this port"
                ),
            );
        }
    }

    async fn deliveries(&mut self) {
        let prediction = format!("doctor{}", &new_prediction_id()[..20]);

        // First a delivery signed with a key the receiver cannot have: it needs no secret, and
        // its answer also shows whether the URL redirects.
        let wrong = Secret::generate();
        let body = self.body(&format!("{prediction}x"), Event::Completed);
        let Some(answer) = self
            .post("signature", &wrong, &new_message_id(), &body)
            .await
        else {
            return;
        };
        self.report.push(Level::Ok, "redirect", "none");
        match answer.status {
            401 => self.report.push(
                Level::Ok,
                "signature",
                "a mis-signed delivery was refused with 401",
            ),
            200..=299 => self.report.push(
                Level::Fail,
                "signature",
                format!(
                    "a mis-signed delivery was answered {}; your endpoint does not verify signatures: check webhook-signature with your whsec_ secret and answer 401",
                    answer.status
                ),
            ),
            404 | 405 => self.report.push(
                Level::Skip,
                "signature",
                format!("the path answers {}; see the deliveries", answer.status),
            ),
            status => self.report.push(
                Level::Warn,
                "signature",
                format!("a mis-signed delivery was answered {status}, refused but not with 401; answer 401 to a bad signature"),
            ),
        }

        let Some(secret) = self.options.secret.clone() else {
            self.report.push(
                Level::Skip,
                "delivery",
                "no --secret: pass the receiver's whsec_ secret (or set REPLICATE_WEBHOOK_SECRET) to send signed sample deliveries",
            );
            self.report.push(Level::Skip, "replay", "needs --secret");
            self.response_time();
            return;
        };
        let mut events = self.options.events.clone();
        events.sort();
        events.dedup();
        let subscribed = events.contains(&Event::Completed);
        let mut completed = None;
        for event in events {
            let name = format!("delivery {event}");
            let id = new_message_id();
            let body = self.body(&prediction, event);
            let Some(answer) = self.post(&name, &secret, &id, &body).await else {
                return;
            };
            let accepted = self.judge_delivery(&name, &answer);
            if event == Event::Completed && accepted {
                completed = Some((id, body));
            }
        }
        match completed {
            Some((id, body)) => {
                if !self.replay(&secret, &id, &body).await {
                    return;
                }
            }
            None if subscribed => self.report.push(
                Level::Skip,
                "replay",
                "the completed delivery was not accepted",
            ),
            None => self.report.push(
                Level::Skip,
                "replay",
                "replays the completed delivery: add completed to --events",
            ),
        }
        self.response_time();
    }

    fn response_time(&mut self) {
        let slow = self.slowest > self.options.timeout / 2;
        let (level, fix) = if slow {
            (
                Level::Warn,
                "; close to Replicate's limit: answer first, work afterwards",
            )
        } else {
            (Level::Ok, "")
        };
        self.report.push(
            level,
            "response time",
            format!(
                "slowest {} of {} requests (Replicate waits about {}){fix}",
                ms(self.slowest),
                self.sent,
                limit(self.options.timeout)
            ),
        );
    }

    /// Records the verdict on a signed delivery; true when it was accepted.
    fn judge_delivery(&mut self, name: &str, answer: &Answer) -> bool {
        let took = ms(answer.took);
        let status = answer.status;
        let said = excerpt(&answer.body);
        let limit = limit(self.options.timeout);
        let accepted = (200..300).contains(&status) && answer.took <= self.options.timeout;
        let (level, message) = match status {
            200..=299 if !accepted => (
                Level::Fail,
                format!(
                    "{status} after {took}; Replicate waits about {limit}: answer 2xx at once and do slow work afterwards"
                ),
            ),
            // The runtime's own words for a delivery no handler takes: worth knowing, not a fault.
            200..=299 if answer.body == "not subscribed" => (
                Level::Warn,
                format!(
                    "{status} in {took}, but no handler took it (\"not subscribed\"); add the event to the module's `events` or drop it from webhook_events_filter"
                ),
            ),
            200..=299 if answer.body == "no handler for this model" => (
                Level::Warn,
                format!(
                    "{status} in {took}, but no module handles model {} (\"no handler for this model\"); pass --model with your model",
                    self.options.model
                ),
            ),
            200..=299 => (Level::Ok, format!("{status} in {took}")),
            401 | 403 => (
                Level::Fail,
                format!(
                    "{status} to a correctly signed delivery{said}; the receiver's secret differs from --secret: use the one `replicate-webhook secret` prints"
                ),
            ),
            404 | 405 => (
                Level::Fail,
                format!(
                    "{status}{said}; no POST route at this path: check the URL's path against the receiver's (default /webhooks/replicate)"
                ),
            ),
            413 => (
                Level::Fail,
                format!(
                    "413{said}; the body limit refuses a small prediction: raise it (WebhookConfig::body_limit)"
                ),
            ),
            500..=599 => (
                Level::Fail,
                format!(
                    "{status}{said}; the receiver failed: see its log (Replicate retries only the completed event, for about a minute)"
                ),
            ),
            _ => (
                Level::Fail,
                format!("{status}{said}; Replicate needs a 2xx answer"),
            ),
        };
        self.report.push(level, name, message);
        accepted
    }

    /// Sends the completed delivery again, as Replicate's retries do; false when it could not.
    async fn replay(&mut self, secret: &Secret, id: &str, body: &[u8]) -> bool {
        let Some(answer) = self.post("replay", secret, id, body).await else {
            return false;
        };
        let status = answer.status;
        if !(200..300).contains(&status) {
            self.report.push(
                Level::Fail,
                "replay",
                format!("a retry (same webhook-id) was answered {status}{}; Replicate retries and duplicates deliveries: answer 2xx without running the handler again", excerpt(&answer.body)),
            );
        } else if answer.body.starts_with("duplicate delivery")
            || answer.body.starts_with("prediction already handled")
        {
            // The runtime says so in its answer; another receiver's handler runs are invisible.
            self.report.push(
                Level::Ok,
                "replay",
                format!("{status}, handler not run again ({:?})", answer.body),
            );
        } else {
            self.report.push(
                Level::Warn,
                "replay",
                format!("{status}, but whether the handler ran twice cannot be seen from outside; deduplicate on webhook-id"),
            );
        }
        true
    }
}

/// A response body as ` (…)`, at most 80 characters, for a failure line.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let cut: String = body.chars().take(80).collect();
    format!(" ({})", shown(&cut))
}

/// `text` escaped so an answer cannot add lines to the report.
fn shown(text: &str) -> String {
    let escaped = format!("{text:?}");
    escaped[1..escaped.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_replicate_cannot_reach() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(unreachable_kind(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(unreachable_kind(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[test]
    fn plain_http_fails_for_a_public_host_and_warns_for_a_local_one() {
        let public = Options::new("http://example.com/webhooks/replicate".parse().unwrap());
        let mut report = Report::default();
        https(&public, false, &mut report);
        https(&public, true, &mut report);
        let secure = Options::new("https://example.com/webhooks/replicate".parse().unwrap());
        https(&secure, false, &mut report);
        let levels: Vec<Level> = report.checks.iter().map(|c| c.level).collect();
        assert_eq!(levels, [Level::Fail, Level::Warn, Level::Ok]);
        assert!(
            report.checks[0]
                .message
                .contains("serve the endpoint with TLS")
        );
    }

    #[test]
    fn a_hostile_answer_cannot_add_report_lines() {
        assert_eq!(
            excerpt("nope\nok   signature: fine"),
            r" (nope\nok   signature: fine)"
        );
    }

    #[test]
    fn lines_are_level_name_message() {
        let check = Check {
            level: Level::Fail,
            name: "redirect".into(),
            message: format!("301 to https://x/; {REDIRECT_FIX}"),
        };
        assert_eq!(
            check.to_string(),
            "FAIL redirect: 301 to https://x/; Replicate does not follow redirects; use the final URL"
        );
    }
}
