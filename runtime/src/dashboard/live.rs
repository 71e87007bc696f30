//! The overview's live counters: an SSE stream of the headline figures every few seconds, over
//! the SSE machinery the live channel uses too (`crate::sse`).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use super::templates::ms;
use super::{Mount, queries};

/// How often the figures are sent.
const EVERY: Duration = Duration::from_secs(2);

pub(crate) async fn overview(req: HttpRequest, mount: web::Data<Mount>) -> HttpResponse {
    if mount.auth.session(&req).is_none() {
        return HttpResponse::Unauthorized().finish();
    }
    let mount = mount.into_inner();
    let events = Box::pin(futures_util::stream::unfold(
        (mount, 0u64),
        |(mount, n)| async move {
            if n > 0 {
                tokio::time::sleep(EVERY).await;
            }
            let data = match queries::overview(&mount).await {
                Ok(o) => serde_json::json!({
                    "deliveries": o.summary.deliveries.to_string(),
                    "handler_p50": ms(o.summary.handler_p50_ms),
                    "handler_p99": ms(o.summary.handler_p99_ms),
                    "refused": o.refusals.by_reason.values().sum::<u64>().to_string(),
                    "backlog": o.backlog.map(|b| format!("{} waiting, {} dead", b.pending + b.running, b.dead)),
                    "journal": format!("{} / {}", o.journal.dropped, o.journal.failed),
                }),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            };
            let event = crate::sse::Event::new("overview", data.to_string()).with_id(n.to_string());
            Some((event, (mount, n + 1)))
        },
    ));
    crate::sse::response(events, crate::sse::DEFAULT_HEARTBEAT)
}
