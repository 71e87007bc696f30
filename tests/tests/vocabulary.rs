//! The attribute and the runtime speak one vocabulary: every handler name the runtime knows is
//! accepted by the attribute and registered as the kind the runtime dispatches on, and every
//! event name parses. If `replicate-webhook-core` and the macro drift apart, this stops
//! compiling or fails.

use replicate_webhook::__private::{Registration, inventory};
use replicate_webhook::{
    DeadLetter, DecodeError, Event, HandlerError, HandlerKind, Prediction, replicate_webhook,
};

#[replicate_webhook(model = "acme/every-handler", events = ["start", "output", "logs", "completed"])]
mod every {
    use super::{DeadLetter, DecodeError, HandlerError, Prediction};

    async fn on_start(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_output(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_logs(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_succeeded(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_failed(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_canceled(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_aborted(_p: Prediction) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_decode_error(_e: DecodeError) -> Result<(), HandlerError> {
        Ok(())
    }
    async fn on_dead(_d: DeadLetter) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// The handler names written above, in the order the runtime lists its kinds.
const WRITTEN: [&str; 9] = [
    "on_start",
    "on_output",
    "on_logs",
    "on_succeeded",
    "on_failed",
    "on_canceled",
    "on_aborted",
    "on_decode_error",
    "on_dead",
];

#[test]
fn macro_and_runtime_share_handler_names_and_events() {
    assert_eq!(HandlerKind::ALL.map(HandlerKind::fn_name), WRITTEN);

    let registration = inventory::iter::<Registration>
        .into_iter()
        .find(|r| r.model == "acme/every-handler")
        .expect("the module is registered");
    let mut kinds: Vec<HandlerKind> = registration.handlers.iter().map(|h| h.kind).collect();
    kinds.sort();
    assert_eq!(kinds, HandlerKind::ALL);

    assert_eq!(every::WEBHOOK.events, Event::ALL);
    assert_eq!(
        every::WEBHOOK.events_filter(),
        Event::ALL.map(Event::as_str)
    );
}
