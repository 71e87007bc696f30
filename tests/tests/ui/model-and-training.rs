use replicate_webhook::replicate_webhook;

#[replicate_webhook(model = "acme/echo", training = "acme/echo")]
mod both {}

fn main() {}
