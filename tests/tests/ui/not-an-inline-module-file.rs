use replicate_webhook::replicate_webhook;

#[replicate_webhook(model = "acme/echo")]
#[path = "support/handlers.rs"]
mod handlers;

fn main() {}
