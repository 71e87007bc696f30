//! Any `webhook-signature` value: verification never panics, accepts only a header that carries
//! the right tag, and a valid entry added to a header within the limits is always found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replicate_webhook::signature::{
    MAX_SIGNATURE_ENTRIES, MAX_SIGNATURE_HEADER_LEN, Secret, Verifier, VerifyError,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: &str = "1614265330";
const NOW: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
/// The tag of (ID, TIMESTAMP, BODY) under SECRET, unpadded: every accepted header holds it.
const TAG: &str = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE";

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = Verifier::new(vec![Secret::parse(SECRET).unwrap()]);
    if verifier.verify_at(ID, TIMESTAMP, header, BODY, NOW).is_ok() {
        assert!(header.contains(&format!("v1,{TAG}")), "accepted {header:?}");
    }

    let with_valid = format!("{header} v1,{TAG}=");
    let within = with_valid.len() <= MAX_SIGNATURE_HEADER_LEN
        && with_valid.split(' ').count() <= MAX_SIGNATURE_ENTRIES
        && with_valid
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ');
    let result = verifier.verify_at(ID, TIMESTAMP, &with_valid, BODY, NOW);
    if within {
        assert_eq!(result, Ok(()), "{with_valid:?}");
    } else {
        assert!(
            matches!(
                result,
                Err(VerifyError::SignatureHeaderTooLong
                    | VerifyError::TooManySignatures
                    | VerifyError::InvalidHeader(_))
            ),
            "{with_valid:?}: {result:?}"
        );
    }
});
