use replicate_webhook::replicate_model;

#[replicate_model(schema = "schemas/no-such-model.json")]
mod model {}

fn main() {
    let _ = model::Input::default();
}
