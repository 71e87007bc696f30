use replicate_webhook::replicate_model;

#[replicate_model(schema = "schemas/flux.json")]
fn model() {}

fn main() {}
