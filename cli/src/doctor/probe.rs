//! The HTTP half of the checks: the mis-signed delivery, the signed ones, the replay.

use std::time::{Duration, Instant};

use replicate_webhook::signature::{self, new_message_id, unix_now};
use replicate_webhook::testkit::{new_prediction_id, sample_prediction};
use replicate_webhook::{Event, Secret};
use serde_json::{Value, json};

use super::report::{Level, Report};
use super::{Options, REDIRECT_FIX};

pub(super) fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A limit as the user wrote it: `5s`, not `5000ms`.
pub(super) fn limit(d: Duration) -> String {
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
pub(super) struct Doctor<'a> {
    options: &'a Options,
    report: &'a mut Report,
    http: reqwest::Client,
    slowest: Duration,
    sent: usize,
}

impl<'a> Doctor<'a> {
    pub(super) fn new(options: &'a Options, local: bool, report: &'a mut Report) -> Self {
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

    pub(super) async fn deliveries(&mut self) {
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
    fn a_hostile_answer_cannot_add_report_lines() {
        assert_eq!(
            excerpt("nope\nok   signature: fine"),
            r" (nope\nok   signature: fine)"
        );
    }
}
