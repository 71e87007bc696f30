//! `replicate-webhook doctor URL`: checks an endpoint the way Replicate will use it, and says
//! for each thing that would keep a webhook from arriving what to change.
//!
//! The report is one line per check, `<level> <check>: <what was seen>[; <the fix>]`, with
//! `level` one of `ok`, `warn`, `FAIL`, `skip`, then a summary line. Only `FAIL` makes the
//! command exit 1; a warning (e.g. a loopback address Replicate cannot reach) does not, so the
//! command is useful against a receiver on the developer's machine.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use replicate_webhook::{Event, Secret};

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

mod probe;
mod report;

use probe::{Doctor, limit, ms};
pub use report::{Check, Level, Report};

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
