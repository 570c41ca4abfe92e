//! Stripe's webhook signature scheme: header `t=<unix>,v1=<hex>[,v1=<hex>...]`, where each
//! v1 is HMAC-SHA256 of `"{t}.{raw body}"` keyed with a webhook secret. Every configured
//! secret is tried (rotation); timestamps too old or too far in the future are refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Largest number of signatures considered in one header (Stripe sends one per secret).
const MAX_SIGNATURES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("no signature matches any configured webhook secret")]
    NoMatch,
    #[error("the signature timestamp is {age}s away from now (tolerance {tolerance}s)")]
    OutOfTolerance { age: i64, tolerance: u64 },
}

impl SignatureError {
    /// The API error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Malformed(_) | SignatureError::NoMatch => "invalid_signature",
            SignatureError::OutOfTolerance { .. } => "timestamp_out_of_tolerance",
        }
    }
}

struct Header<'a> {
    timestamp: i64,
    signatures: Vec<&'a str>,
}

fn parse_header(header: &str) -> Result<Header<'_>, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t= is not a unix timestamp"))?;
                timestamp = Some(t);
            }
            "v1" if signatures.len() < MAX_SIGNATURES => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1= signature"));
    }
    Ok(Header {
        timestamp,
        signatures,
    })
}

fn mac_for(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks `header` against `body` with any of `secrets`, at time `now` (unix seconds).
/// The timestamp is checked after the signature, so a forged header learns nothing.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[String],
    tolerance_secs: u64,
    now: i64,
) -> Result<(), SignatureError> {
    let parsed = parse_header(header)?;
    let candidates: Vec<Vec<u8>> = parsed
        .signatures
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        .filter(|s| s.len() == 32)
        .collect();
    let matched = secrets.iter().any(|secret| {
        let mac = mac_for(secret, parsed.timestamp, body);
        candidates
            .iter()
            // verify_slice compares in constant time.
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    let age = now.saturating_sub(parsed.timestamp);
    if age.unsigned_abs() > tolerance_secs {
        return Err(SignatureError::OutOfTolerance {
            age,
            tolerance: tolerance_secs,
        });
    }
    Ok(())
}

/// The header Stripe would send for `body` at `timestamp` (tests, simulate-payment, loadgen).
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let sig = mac_for(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    const NOW: i64 = 1_800_000_000;

    fn secrets() -> Vec<String> {
        vec!["whsec_old".into(), "whsec_new".into()]
    }

    #[test]
    fn a_signature_from_any_configured_secret_verifies() {
        for secret in ["whsec_old", "whsec_new"] {
            let header = sign(BODY, secret, NOW);
            assert_eq!(verify(&header, BODY, &secrets(), 300, NOW), Ok(()));
        }
    }

    #[test]
    fn a_wrong_secret_or_changed_body_is_refused() {
        let header = sign(BODY, "whsec_other", NOW);
        assert_eq!(
            verify(&header, BODY, &secrets(), 300, NOW),
            Err(SignatureError::NoMatch)
        );
        let header = sign(BODY, "whsec_new", NOW);
        assert_eq!(
            verify(&header, b"{}", &secrets(), 300, NOW),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        for t in [NOW - 301, NOW + 301] {
            let header = sign(BODY, "whsec_new", t);
            let err = verify(&header, BODY, &secrets(), 300, NOW).unwrap_err();
            assert_eq!(err.code(), "timestamp_out_of_tolerance");
        }
        let header = sign(BODY, "whsec_new", NOW - 299);
        assert!(verify(&header, BODY, &secrets(), 300, NOW).is_ok());
    }

    #[test]
    fn malformed_headers_are_refused_without_panic() {
        for header in [
            "",
            "t=",
            "t=abc,v1=00",
            "v1=00",
            "t=1",
            ",,,",
            "t=99999999999999999999999,v1=aa",
            "t=-5,v1=zz",
        ] {
            let err = verify(header, BODY, &secrets(), 300, NOW).unwrap_err();
            assert_eq!(err.code(), "invalid_signature", "{header}");
        }
    }

    #[test]
    fn the_valid_one_among_many_signatures_is_found() {
        let good = sign(BODY, "whsec_new", NOW);
        let good_sig = good.split("v1=").nth(1).unwrap();
        let mut header = format!("t={NOW}");
        for _ in 0..9 {
            header.push_str(&format!(",v1={}", "ab".repeat(32)));
        }
        header.push_str(&format!(",v1={good_sig}"));
        assert!(verify(&header, BODY, &secrets(), 300, NOW).is_ok());
    }
}
