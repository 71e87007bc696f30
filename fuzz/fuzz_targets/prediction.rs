//! Any body decodes to a `Prediction` or fails cleanly, and a decoded prediction survives
//! serialising and decoding again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replicate_webhook::Prediction;

fuzz_target!(|data: &[u8]| {
    // Typed output and input, as a handler of `replicate/hello-world` or a typed model gets it.
    let _ = serde_json::from_slice::<Prediction<String>>(data);
    let _ = serde_json::from_slice::<Prediction<Vec<String>, serde_json::Value>>(data);
    let Ok(prediction) = serde_json::from_slice::<Prediction>(data) else {
        return;
    };
    // What the receiver derives from it.
    let _ = (prediction.event(), prediction.queue_time());
    let _ = (prediction.status.is_terminal(), prediction.status.event());
    // Serialising can fail (a year past 9999 has no RFC 3339 form), but must not panic.
    let Ok(encoded) = serde_json::to_vec(&prediction) else {
        return;
    };
    let again: Prediction = serde_json::from_slice(&encoded)
        .unwrap_or_else(|e| panic!("re-decoding {:?}: {e}", String::from_utf8_lossy(&encoded)));
    assert_eq!(again.id, prediction.id);
    assert_eq!(again.model, prediction.model);
    assert_eq!(again.status, prediction.status);
    assert_eq!(again.error, prediction.error);
    assert_eq!(again.created_at, prediction.created_at);
    assert_eq!(again.completed_at, prediction.completed_at);
    // `input` and `output` are left out: without serde_json's `float_roundtrip`, a float may
    // come back one unit in the last place off.
});
