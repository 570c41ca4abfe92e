//! The Stripe-Signature header parser and verifier (`facture_core::stripe::verify`).
//!
//! Input layout: the bytes up to the first `\n` are the header (lossily decoded, as a
//! header that is not text is refused before parsing anyway), the rest is the body.
//! Checks, besides "never panics":
//! - a refusal is one of the three documented errors and has an API code;
//! - without a `t=` or a `v1=` the header is refused as malformed;
//! - a header produced by `sign` for the same body and a timestamp within tolerance always
//!   verifies, whatever the body (and whatever garbage follows it, as long as it holds no
//!   other `t=`).
#![no_main]

use facture_core::stripe::{sign, verify, SignatureError};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;
const TOLERANCE: u64 = 300;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let secrets = vec!["whsec_fuzz_a".to_owned(), "whsec_fuzz_b".to_owned()];

    match verify(&header, body, &secrets, TOLERANCE, NOW) {
        Ok(()) => {
            // Only a real HMAC can verify: the header must carry both parts.
            assert!(
                header.contains("t=") && header.contains("v1="),
                "{header:?}"
            );
        }
        Err(e) => {
            assert!(
                matches!(e.code(), "invalid_signature" | "timestamp_out_of_tolerance"),
                "{e:?}"
            );
            if !header.contains("t=") || !header.contains("v1=") {
                assert!(
                    matches!(e, SignatureError::Malformed(_)),
                    "{header:?}: {e:?}"
                );
            }
            let _ = e.to_string();
        }
    }

    // Round trip: a genuine signature of this body verifies, with fuzzed extras after it.
    let skew = i64::from(body.first().copied().unwrap_or(0)) - 128;
    let good = sign(body, &secrets[1], NOW + skew);
    assert_eq!(verify(&good, body, &secrets, TOLERANCE, NOW), Ok(()));
    if !header.contains("t=") {
        let extended = format!("{good},{header}");
        assert_eq!(
            verify(&extended, body, &secrets, TOLERANCE, NOW),
            Ok(()),
            "{extended:?}"
        );
    }
});
