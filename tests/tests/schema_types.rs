//! The generated API as a user writes it: constructors, defaults, enums, renames, secrets,
//! streamed text and unions, on real schemas from `fixtures/schemas`.

use replicate_webhook::{Url, replicate_model};
use serde_json::{Value, json};

#[replicate_model(schema = "../fixtures/schemas/black-forest-labs__flux-schnell.json")]
mod flux {
    /// Items written in the module stay next to the generated ones.
    pub(crate) fn square(prompt: &str) -> Input {
        Input {
            aspect_ratio: AspectRatio::V1_1,
            ..Input::new(prompt)
        }
    }
}

#[replicate_model(schema = "../fixtures/schemas/meta__llama-2-70b-chat.json")]
mod llama {}

#[replicate_model(schema = "../fixtures/schemas/kuprel__min-dalle.json")]
mod min_dalle {}

#[replicate_model(schema = "../fixtures/schemas/gnobitab__fusedream.json")]
mod fusedream {}

#[replicate_model(schema = "../fixtures/schemas/cog-fixture__secret.json")]
mod secret {}

#[replicate_model(schema = "../fixtures/schemas/nelsonjchen__op-replay-clipper.json")]
mod clipper {}

#[replicate_model(schema = "../fixtures/schemas/openai__whisper.json")]
mod whisper {}

#[replicate_model(schema = "../fixtures/schemas/peter65374__face-swap-detect.json")]
mod face_swap {}

#[replicate_model(schema = "../fixtures/schemas/cog-fixture__openapi_optional_output_type.json")]
mod optional_output {}

#[replicate_model(schema = "../fixtures/schemas/black-forest-labs__flux-kontext-pro.json")]
mod kontext {}

#[replicate_model(schema = "../fixtures/schemas/lucataco__hermes-2-pro-llama-3-8b.json")]
mod hermes {}

fn output_of(file: &str) -> Value {
    let path = format!(
        "{}/../fixtures/schemas/outputs/{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("output file");
    serde_json::from_str::<Value>(&text).expect("JSON")["output"].clone()
}

#[test]
fn flux_input_from_new_and_defaults() {
    let mut input = flux::Input::new("a cat in a hat");
    assert_eq!(input.num_outputs, 1_u8);
    assert_eq!(input.output_quality, flux::Input::default_output_quality());
    assert_eq!(input.seed, None);
    input.aspect_ratio = flux::AspectRatio::V16_9;
    input.seed = Some(42);
    assert_eq!(
        serde_json::to_value(&input).unwrap(),
        json!({
            "prompt": "a cat in a hat",
            "aspect_ratio": "16:9",
            "num_outputs": 1,
            "seed": 42,
            "output_format": "webp",
            "output_quality": 80,
            "disable_safety_checker": false,
            "go_fast": true,
            "megapixels": "1"
        })
    );
    // Missing fields take the schema defaults; `prompt` is required.
    let parsed: flux::Input =
        serde_json::from_value(json!({ "prompt": "x", "megapixels": "0.25" })).unwrap();
    assert_eq!(parsed.megapixels, flux::Megapixels::V0_25);
    assert_eq!(parsed.output_format, flux::OutputFormat::Webp);
    assert!(serde_json::from_value::<flux::Input>(json!({})).is_err());
    assert!(
        serde_json::from_value::<flux::Input>(json!({ "prompt": "x", "aspect_ratio": "7:3" }))
            .is_err()
    );
    assert_eq!(flux::square("y").aspect_ratio.to_string(), "1:1");
    assert_eq!(flux::AspectRatio::ALL.len(), 11);
    assert_eq!(flux::AspectRatio::V9_21.as_str(), "9:21");
}

#[test]
fn flux_output_is_a_list_of_urls() {
    let output: flux::Output =
        serde_json::from_value(output_of("black-forest-labs__flux-schnell")).unwrap();
    let first: &Url = &output[0];
    assert_eq!(first.host_str(), Some("replicate.delivery"));
}

#[test]
fn streamed_text_concatenates() {
    let output: llama::Output = serde_json::from_value(json!(["Hel", "lo", "!"])).unwrap();
    assert_eq!(output.text(), "Hello!");
    assert_eq!(output.to_string(), "Hello!");
    assert_eq!(output.len(), 3);
    assert_eq!(
        serde_json::to_value(&output).unwrap(),
        json!(["Hel", "lo", "!"])
    );
    let real: llama::Output = serde_json::from_value(output_of("meta__llama-2-70b-chat")).unwrap();
    assert!(!real.text().is_empty());
    assert!(serde_json::from_value::<llama::Output>(json!("one string")).is_err());
}

#[test]
fn integer_enums_are_numbers() {
    let input = min_dalle::Input::default();
    assert_eq!(input.top_k, min_dalle::TopK::V64);
    assert_eq!(input.grid_size, 5_u8);
    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(json["top_k"], json!(64));
    assert_eq!(json["supercondition_factor"], json!(16));
    let back: min_dalle::TopK = serde_json::from_value(json!(128)).unwrap();
    assert_eq!(back, min_dalle::TopK::V128);
    assert!(serde_json::from_value::<min_dalle::TopK>(json!(3)).is_err());
}

#[test]
fn string_valued_integer_enum_accepts_both() {
    // fusedream: `model_size: {"enum": ["512", "256"], "type": "integer", "default": 512}`.
    let size: fusedream::ModelSize = serde_json::from_value(json!("256")).unwrap();
    assert_eq!(size, fusedream::ModelSize::V256);
    let size: fusedream::ModelSize = serde_json::from_value(json!(512)).unwrap();
    assert_eq!(serde_json::to_value(size).unwrap(), json!(512));
    assert_eq!(
        fusedream::Input::default().model_size,
        fusedream::ModelSize::V512
    );
    let items: fusedream::Output =
        serde_json::from_value(output_of("gnobitab__fusedream")).unwrap();
    assert!(
        items
            .iter()
            .any(|item: &fusedream::OutputItem| item.file.is_some())
    );
}

#[test]
fn secrets_are_redacted_in_debug_only() {
    let input = secret::Input::new(secret::Secret::new("hunter2"));
    assert!(!format!("{input:?}").contains("hunter2"));
    assert_eq!(input.s1.expose(), "hunter2");
    let json = serde_json::to_value(&input).unwrap();
    assert_eq!(json["s1"], json!("hunter2"));
    assert_eq!(json["s3"], json!("baz"));
    assert_eq!(json["ss"], json!(["bar123", "**********"]));
}

#[test]
fn camel_case_properties_are_renamed() {
    let input = clipper::Input::default();
    let json = serde_json::to_value(&input).unwrap();
    assert!(json.get("renderType").is_some() && json.get("fileSize").is_some());
    assert!(json.get("render_type").is_none());
    let back: clipper::Input = serde_json::from_value(json).unwrap();
    assert_eq!(back, input);
}

#[test]
fn object_output_with_optional_fields() {
    let output: whisper::Output = serde_json::from_value(output_of("openai__whisper")).unwrap();
    assert_eq!(output.translation, None);
    assert!(!output.transcription.is_empty());
    assert!(output.segments.is_some());
}

#[test]
fn any_of_outputs_are_untagged_enums() {
    let url: face_swap::Output =
        serde_json::from_value(output_of("peter65374__face-swap-detect")).unwrap();
    assert!(matches!(url, face_swap::Output::Url(_)));
    let list: face_swap::Output = serde_json::from_value(json!([[1, "x"], []])).unwrap();
    assert!(matches!(list, face_swap::Output::List(_)));

    let object: optional_output::Output =
        serde_json::from_value(json!({ "foo_string": null })).unwrap();
    let optional_output::Output::ModelOutput(model_output) = object else {
        panic!("{object:?}")
    };
    assert_eq!(
        model_output.foo_number, 42,
        "the schema default \"42\" on an integer field"
    );
    let text: optional_output::Output = serde_json::from_value(json!("plain")).unwrap();
    assert_eq!(text, optional_output::Output::String("plain".into()));
    assert_eq!(
        serde_json::to_value(optional_output::Input {}).unwrap(),
        json!({})
    );
}

#[test]
fn nullable_inputs_are_options() {
    let input = kontext::Input::new("make it blue");
    assert_eq!(input.seed, None);
    assert_eq!(input.input_image, None);
    let json = serde_json::to_value(&input).unwrap();
    assert!(json.get("seed").is_none(), "None is left out: {json}");
}

#[test]
fn training_types_are_generated_too() {
    let weights: hermes::TrainingOutput =
        serde_json::from_value(json!({ "weights": "https://replicate.delivery/w.tar" })).unwrap();
    assert_eq!(weights.weights.path(), "/w.tar");
    let mut training = hermes::TrainingInput::new("NousResearch/Hermes-2-Theta-Llama-3-8B");
    training.hf_token = Some(hermes::Secret::new("hf_secret"));
    assert!(!format!("{training:?}").contains("hf_secret"));
    let json = serde_json::to_value(&training).unwrap();
    assert_eq!(
        json["hf_model_id"],
        json!("NousResearch/Hermes-2-Theta-Llama-3-8B")
    );
    assert_eq!(json["hf_token"], json!("hf_secret"));
    assert_eq!(json["ignore_patterns"], json!("*.gguf"));
}

#[test]
fn data_uris_are_urls() {
    let output: Option<Vec<Url>> =
        serde_json::from_value(output_of("stability-ai__sdxl--processing-data-uri")).unwrap();
    assert_eq!(output.unwrap()[0].scheme(), "data");
}
