//! The pages, as compile-time templates: every value is escaped by `maud` unless marked
//! `PreEscaped`, which nothing here does with data.

use maud::{DOCTYPE, Markup, html};

use super::queries::{self, DeliveryQuery, JobQuery, Overview, ReconcilerView, Timeline};
use crate::inbox::{Job, JobState};
use crate::journal::{Outcome, Record};
use crate::monitor::{LAG_BUCKETS, MonitorSnapshot};

/// What every logged-in page needs.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) prefix: String,
    pub(crate) csrf: String,
}

fn head(prefix: &str, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · replicate-webhook" }
            link rel="stylesheet" href={ (prefix) "/assets/dashboard.css" };
            script src={ (prefix) "/assets/dashboard.js" } defer {}
        }
    }
}

fn layout(page: &Page, title: &str, body: &Markup) -> Markup {
    let p = &page.prefix;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(p, title))
            body data-prefix=(p) {
                header {
                    nav aria-label="Dashboard" {
                        strong { "replicate-webhook" }
                        a href={ (p) "/" } { "Overview" }
                        a href={ (p) "/deliveries" } { "Deliveries" }
                        a href={ (p) "/inbox" } { "Inbox" }
                        a href={ (p) "/reconciler" } { "Reconciler" }
                        form method="post" action={ (p) "/logout" } class="inline" {
                            input type="hidden" name="csrf" value=(page.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The login form; the body of the 401 every unauthenticated page gets.
pub(crate) fn login(prefix: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(prefix, "Log in"))
            body {
                main class="login" {
                    h1 { "replicate-webhook dashboard" }
                    @if let Some(error) = error {
                        p class="error" role="alert" { (error) }
                    }
                    form method="post" action={ (prefix) "/login" } {
                        label for="token" { "Dashboard token" }
                        input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

pub(crate) fn problem(page: &Page, message: &str) -> Markup {
    layout(
        page,
        "Cannot show this",
        &html! { p class="error" role="alert" { (message) } },
    )
}

/// A duration in milliseconds as the pages and the live counters show it.
pub(crate) fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"))
}

pub(crate) fn overview(page: &Page, o: &Overview, inbox_on: bool) -> Markup {
    let s = &o.summary;
    let max = s
        .per_minute
        .iter()
        .map(|m| m.by_outcome.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let body = html! {
        @for problem in &o.problems {
            p class="error" role="alert" { (problem) }
        }
        section class="cards" {
            div class="card" { span class="label" { "Deliveries, last hour" } span class="value" data-live="deliveries" { (s.deliveries) } }
            div class="card" { span class="label" { "Handler p50" } span class="value" data-live="handler_p50" { (ms(s.handler_p50_ms)) } }
            div class="card" { span class="label" { "Handler p99" } span class="value" data-live="handler_p99" { (ms(s.handler_p99_ms)) } }
            div class="card" { span class="label" { "Refused before verification" } span class="value" data-live="refused" { (o.refusals.by_reason.values().sum::<u64>()) } }
            @if let Some(b) = &o.backlog {
                div class="card" { span class="label" { "Inbox backlog" } span class="value" data-live="backlog" { (b.pending + b.running) " waiting, " (b.dead) " dead" } }
            } @else if !inbox_on {
                div class="card" { span class="label" { "Inbox" } span class="value" { "off" } }
            }
            div class="card" { span class="label" { "Journal dropped / failed" } span class="value" data-live="journal" { (o.journal.dropped) " / " (o.journal.failed) } }
        }
        section {
            h2 { "Deliveries per minute, by outcome" }
            @if s.per_minute.is_empty() {
                p { "No deliveries in the last hour." }
            } @else {
                table class="minutes" {
                    thead { (columns(&["Minute (UTC)", "Count", "By outcome"])) }
                    tbody {
                        @for m in s.per_minute.iter().rev().take(15) {
                            @let total = m.by_outcome.values().sum::<u64>();
                            tr {
                                td { (queries::rfc3339(m.at_ms).get(11..16).unwrap_or("")) }
                                td { (total) }
                                td {
                                    div class="bar" {
                                        @for (outcome, n) in &m.by_outcome {
                                            span class={ "seg o-" (outcome) } data-width=(n * 100 / max) title={ (outcome) ": " (n) } { (outcome) " " (n) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        div class="columns" {
            section {
                h2 { "By outcome" }
                (counts(&s.by_outcome))
            }
            section {
                h2 { "By model and event" }
                (counts(&s.by_model_event))
            }
            section {
                h2 { "Refusals by reason" }
                (counts(&o.refusals.by_reason))
                @if !o.refusals.sample.is_empty() {
                    details {
                        summary { "Latest refusals" }
                        ul {
                            @for r in &o.refusals.sample {
                                li { (queries::rfc3339(r.at_ms)) " " (r.http_status) " " (r.reason) }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Expected deliveries" }
            (monitor_table(&o.monitor))
        }
    };
    layout(page, "Overview", &body)
}

/// A table head row of these column names.
fn columns(names: &[&str]) -> Markup {
    html! { tr { @for name in names { th scope="col" { (name) } } } }
}

fn counts<K: std::fmt::Display>(map: &std::collections::BTreeMap<K, u64>) -> Markup {
    html! {
        @if map.is_empty() {
            p { "None." }
        } @else {
            table {
                tbody {
                    @for (k, n) in map {
                        tr { td { (k) } td class="num" { (n) } }
                    }
                }
            }
        }
    }
}

fn monitor_table(m: &MonitorSnapshot) -> Markup {
    html! {
        @if m.models.is_empty() {
            p { "No predictions created through a watching client yet." }
        } @else {
            table {
                thead { (columns(&["Model", "Expected", "By webhook", "Recovered by the reconciler", "Lag (≤ s: count)", "Alert"])) }
                tbody {
                    @for (model, s) in &m.models {
                        tr {
                            td { (model) } td class="num" { (s.expected) } td class="num" { (s.received) } td class="num" { (s.recovered) }
                            td { @for (bound, n) in LAG_BUCKETS.iter().zip(s.lag_buckets) { @if n > 0 { span class="tag" { @if bound.is_finite() { "≤" (bound) } @else { ">300" } ": " (n) } " " } } }
                            td { @if s.alerting { strong class="error" { "webhooks missing" } } @else { "ok" } }
                        }
                    }
                }
            }
        }
    }
}

fn outcome_select(selected: Option<&str>) -> Markup {
    html! {
        select id="outcome" name="outcome" {
            option value="" { "any" }
            @for o in Outcome::ALL {
                option value=(o.as_str()) selected[selected == Some(o.as_str())] { (o.as_str()) }
            }
        }
    }
}

fn delivery_rows(p: &str, rows: &[Record], link: bool) -> Markup {
    html! {
        table class="rows" {
            thead { (columns(&["Received (UTC)", "Prediction", "Model", "Event", "Status", "Answer", "Outcome", "Handler", "Detail", "webhook-id"])) }
            tbody {
                @for r in rows {
                    tr class="delivery" {
                        td { (queries::rfc3339(r.received_ms)) }
                        td {
                            @if link && !r.prediction_id.is_empty() { a href={ (p) "/predictions/" (urlencode(&r.prediction_id)) } { (r.prediction_id) } } @else { (r.prediction_id) }
                            @if let Some(tenant) = &r.tenant { " " span class="tag" title="tenant" { (tenant) } }
                        }
                        td { (r.model) } td { (r.event) } td { (r.status) } td class="num" { (r.http_status) }
                        td { span class={ "tag o-" (r.outcome.as_str()) } { (r.outcome.as_str()) } }
                        td class="num" { (ms(r.duration_ms())) }
                        td class="detail" { (r.detail.as_deref().unwrap_or("")) }
                        td class="mono" { (r.webhook_id) }
                    }
                }
            }
        }
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub(crate) fn deliveries(page: &Page, q: &DeliveryQuery, rows: &[Record]) -> Markup {
    let p = &page.prefix;
    let body = html! {
        form method="get" action={ (p) "/deliveries" } class="search" role="search" {
            label for="prediction" { "Prediction" } input id="prediction" name="prediction" value=(q.prediction.as_deref().unwrap_or(""));
            label for="model" { "Model" } input id="model" name="model" value=(q.model.as_deref().unwrap_or("")) placeholder="owner/name";
            label for="outcome" { "Outcome" } (outcome_select(q.outcome.as_deref()))
            label for="since" { "Last minutes" } input id="since" name="since" type="number" min="1" value=(q.since.as_deref().unwrap_or(""));
            button type="submit" { "Search" }
        }
        @if rows.is_empty() { p { "No deliveries match." } } @else { (delivery_rows(p, rows, true)) }
    };
    layout(page, "Deliveries", &body)
}

pub(crate) fn timeline(page: &Page, prediction: &str, t: &Timeline) -> Markup {
    let p = &page.prefix;
    let body = html! {
        p { "Prediction " code { (prediction) } ": every delivery and every inbox run, oldest first." }
        h2 { "Deliveries" }
        @if t.deliveries.is_empty() { p { "No deliveries journaled for this prediction." } } @else { (delivery_rows(p, &t.deliveries, false)) }
        @if !t.jobs.is_empty() {
            h2 { "Inbox jobs" }
            (job_rows(page, &t.jobs))
        }
    };
    layout(page, &format!("Timeline of {prediction}"), &body)
}

fn job_rows(page: &Page, jobs: &[Job]) -> Markup {
    let p = &page.prefix;
    html! {
        table class="rows" {
            thead { (columns(&["Job", "Prediction", "Model", "Handler", "State", "Attempts", "Next run (UTC)", "Last error", "Actions"])) }
            tbody {
                @for job in jobs {
                    tr class="job" data-job=(job.id) {
                        td class="num" { (job.id) }
                        td { a href={ (p) "/predictions/" (urlencode(&job.prediction_id)) } { (job.prediction_id) } }
                        td { (job.model) } td { (job.handler) }
                        td { span class={ "tag s-" (queries::shown_state(job)) } { (queries::shown_state(job)) } }
                        td class="num" { (job.attempts) }
                        td { @if job.state == JobState::Pending { (queries::rfc3339(job.run_at_ms)) } }
                        td class="detail" { (job.last_error.as_deref().unwrap_or("")) }
                        td {
                            @if job.state == JobState::Dead {
                                a class="button" href={ (p) "/inbox/confirm?action=replay&id=" (job.id) } { "Replay" } " "
                            }
                            @if matches!(job.state, JobState::Dead | JobState::Pending) {
                                a class="button" href={ (p) "/inbox/confirm?action=discard&id=" (job.id) } { "Discard" }
                            }
                        }
                    }
                }
            }
        }
    }
}

const SHOWN_STATES: [&str; 6] = ["queued", "running", "retrying", "dead", "done", "discarded"];

pub(crate) fn inbox(page: &Page, q: &JobQuery, jobs: &[Job], done: Option<&str>) -> Markup {
    let p = &page.prefix;
    let filter = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.filters())
        .finish();
    let body = html! {
        @if let Some(done) = done { p class="notice" role="status" { (done) } }
        form method="get" action={ (p) "/inbox" } class="search" role="search" {
            label for="state" { "State" }
            select id="state" name="state" {
                option value="" { "any" }
                @for s in SHOWN_STATES { option value=(s) selected[q.state.as_deref() == Some(s)] { (s) } }
            }
            label for="model" { "Model" } input id="model" name="model" value=(q.model.as_deref().unwrap_or(""));
            label for="prediction" { "Prediction" } input id="prediction" name="prediction" value=(q.prediction.as_deref().unwrap_or(""));
            button type="submit" { "Filter" }
        }
        p class="bulk" {
            a class="button" href={ (p) "/inbox/confirm?action=replay-all&" (filter) } { "Replay every dead job shown" } " "
            a class="button" href={ (p) "/inbox/confirm?action=discard-all&" (filter) } { "Discard every pending or dead job shown" }
        }
        @if jobs.is_empty() { p { "No jobs match." } } @else { (job_rows(page, jobs)) }
    };
    layout(page, "Inbox", &body)
}

pub(crate) fn confirm(
    page: &Page,
    question: &str,
    action: &str,
    id: Option<i64>,
    filter: &JobQuery,
) -> Markup {
    let p = &page.prefix;
    let body = html! {
        form method="post" action={ (p) "/inbox/act" } class="confirm" {
            p { (question) }
            input type="hidden" name="csrf" value=(page.csrf);
            input type="hidden" name="action" value=(action);
            @if let Some(id) = id { input type="hidden" name="id" value=(id); }
            @for (name, value) in filter.filters() { input type="hidden" name=(name) value=(value); }
            button type="submit" id="confirm" autofocus { "Confirm" } " "
            a href={ (p) "/inbox" } { "Cancel" }
        }
    };
    layout(page, "Confirm", &body)
}

pub(crate) fn reconciler(page: &Page, view: &ReconcilerView) -> Markup {
    let p = &page.prefix;
    let body = html! {
        @for problem in &view.problems { p class="error" { "Could not read " (problem) } }
        section {
            h2 { "Watched predictions" }
            @match &view.watched {
                None => p { "The reconciler is off: nothing is watched (it needs an API token, REPLICATE_API_TOKEN)." },
                Some(watched) => {
                    p { "From the dedupe store, as every instance sharing it sees them: predictions heard of (by a delivery or a watching client) whose terminal webhook has not been handled yet, soonest poll first. A tenant's predictions are polled with that tenant's API token." }
                    @if watched.is_empty() { p { "None." } } @else {
                        table class="rows" {
                            thead { (columns(&["Prediction", "Tenant", "Next poll (UTC)", "Polls so far"])) }
                            tbody { @for w in watched { tr class="watched" {
                                td { a href={ (p) "/predictions/" (urlencode(&w.prediction_id)) } { (w.prediction_id) } }
                                td { (w.tenant.as_deref().unwrap_or("")) }
                                td { (w.next_poll_at) } td class="num" { (w.polls) }
                            } } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Recovered" }
            @match &view.recovered {
                None => p { "The journal is off: recoveries are not listed." },
                Some(rows) => {
                    p { "The reconciler's deliveries in the journal (every instance's), newest first, with the answer each got." }
                    @if rows.is_empty() { p { "Nothing recovered: every result came by webhook." } } @else {
                        (delivery_rows(p, rows, true))
                    }
                }
            }
        }
        section {
            h2 { "By model, on this instance" }
            p { "Counted by this instance since it started: predictions it created through a watching client, and their results it handled." }
            (monitor_table(&view.monitor))
        }
    };
    layout(page, "Reconciler", &body)
}
