use replicate_webhook::replicate_model;

#[replicate_model(schema_file = "schemas/flux.json")]
mod model {}

fn main() {}
