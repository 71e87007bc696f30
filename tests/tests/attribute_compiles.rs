//! The attribute as users write it compiles cleanly under strict lints.
#![forbid(unsafe_code)]
// `forbid`, not `deny`: the expansion must not need an `allow` of its own.
#![forbid(clippy::pedantic)]
// The snippet from the docs, as written: `pub fn`s in a private module.
#![allow(unreachable_pub)]

use actix_web::web;
use replicate_webhook::{DecodeError, HandlerError, Prediction, replicate_webhook};

#[derive(Debug, Default)]
pub struct Db;

#[replicate_webhook(model = "black-forest-labs/flux-schnell", events = ["start", "completed"])]
mod flux {
    use super::{Db, HandlerError, Prediction, web};

    pub async fn on_start(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    pub async fn on_succeeded(
        p: Prediction<Vec<String>>,
        db: web::Data<Db>,
    ) -> Result<(), HandlerError> {
        let _ = (p, db);
        Ok(())
    }

    pub async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    /// Helpers and other items are left alone.
    pub fn helper() -> u8 {
        1
    }
}

#[replicate_webhook(model = "*", events = "completed", path = "/hooks/other")]
mod everything {
    //! Inner attributes and docs stay inside the module.
    #![allow(dead_code)]

    use super::{DecodeError, HandlerError, Prediction};

    async fn on_succeeded(
        p: Prediction<serde_json::Value, serde_json::Value>,
        req: actix_web::HttpRequest,
    ) -> Result<(), HandlerError> {
        let _ = (p, req);
        Ok(())
    }

    async fn on_decode_error(e: DecodeError) -> Result<(), std::io::Error> {
        let _ = e;
        Ok(())
    }
}

/// Documented, with attributes, handlers of every visibility and a `#[cfg]`-ed one.
#[replicate_webhook(model = "acme/cfg", events = ["start", "completed"], path = "/hooks/cfg")]
#[allow(dead_code)]
pub(crate) mod configured {
    use super::{HandlerError, Prediction};

    pub(crate) async fn on_succeeded(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    #[cfg(any())]
    pub async fn on_failed(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    #[cfg(test)]
    async fn on_canceled(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    #[cfg(not(test))]
    async fn on_canceled(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    #[cfg(test)]
    async fn on_start(p: Prediction) -> Result<(), HandlerError> {
        let _ = p;
        Ok(())
    }

    pub mod nested {
        /// Not a handler: only the module's own items are.
        pub fn on_whatever() {}
    }
}

/// A handler may return `()`: nothing can fail, so the delivery is always handled.
#[replicate_webhook(model = "acme/unit", path = "/hooks/unit")]
mod unit {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Prediction;

    pub static RUNS: AtomicUsize = AtomicUsize::new(0);

    async fn on_succeeded(p: Prediction) {
        assert_eq!(p.model, "acme/unit");
        RUNS.fetch_add(1, Ordering::SeqCst);
    }
}

#[actix_web::test]
async fn a_handler_returning_unit_runs_and_is_acknowledged() {
    use actix_web::{App, test};
    use replicate_webhook::testkit::TestDelivery;
    use replicate_webhook::{Secret, WebhookConfig, configure};
    use std::sync::atomic::Ordering;

    let secret = Secret::generate();
    let app =
        test::init_service(App::new().configure(configure(WebhookConfig::new(secret.clone()))))
            .await;
    let delivery = TestDelivery::succeeded("acme/unit", "x".into()).path("/hooks/unit");
    for expected in [
        "done",
        "prediction already handled; its first terminal status wins",
    ] {
        let request = delivery.sign(&secret).to_request().to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(test::read_body(response).await, expected.as_bytes());
    }
    assert_eq!(unit::RUNS.load(Ordering::SeqCst), 1);
}

#[test]
fn cfg_ed_out_handlers_are_not_registered() {
    let registration =
        replicate_webhook::__private::inventory::iter::<replicate_webhook::__private::Registration>
            .into_iter()
            .find(|r| r.model == "acme/cfg")
            .expect("the module is registered");
    let kinds: Vec<_> = registration.handlers.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        [
            replicate_webhook::HandlerKind::Succeeded,
            replicate_webhook::HandlerKind::Canceled,
            replicate_webhook::HandlerKind::Start
        ]
    );
}

#[test]
fn the_module_exposes_its_webhook_spec() {
    assert_eq!(flux::WEBHOOK.model, "black-forest-labs/flux-schnell");
    assert_eq!(flux::WEBHOOK.path, "/webhooks/replicate");
    assert_eq!(flux::WEBHOOK.events_filter(), ["start", "completed"]);
    assert_eq!(everything::WEBHOOK.path, "/hooks/other");
    assert_eq!(everything::WEBHOOK.events_filter(), ["completed"]);
    assert_eq!(flux::helper(), 1);
}
