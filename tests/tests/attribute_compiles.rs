//! The attribute as users write it compiles cleanly under strict lints.
#![forbid(unsafe_code)]
#![deny(clippy::pedantic)]
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
    #![allow(clippy::doc_markdown)]

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

#[test]
fn the_module_exposes_its_webhook_spec() {
    assert_eq!(flux::WEBHOOK.model, "black-forest-labs/flux-schnell");
    assert_eq!(flux::WEBHOOK.path, "/webhooks/replicate");
    assert_eq!(flux::WEBHOOK.events_filter(), ["start", "completed"]);
    assert_eq!(everything::WEBHOOK.path, "/hooks/other");
    assert_eq!(everything::WEBHOOK.events_filter(), ["completed"]);
    assert_eq!(flux::helper(), 1);
}
