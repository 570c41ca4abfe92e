//! A deterministic, always-on fuzz-style test of what facture reads from the outside world
//! before anything else: the `Stripe-Signature` header (parsed and verified by
//! `stripe::verify`) and the webhook body (`stripe::decode_event`). CI has no cargo-fuzz
//! (see `fuzz/` for the coverage-guided targets); this runs on stable, in every `cargo test`.
//!
//! A seeded xorshift mutates the Stripe fixtures (`tests/fixtures/stripe/`) and genuine
//! headers: byte and bit flips, truncations, insertions, huge numbers, deep nesting, invalid
//! UTF-8, many `v1=` entries, an empty `t=`, splices... Every case must return a well-formed
//! `Ok`/`Err` without panicking:
//! - a decoded event has an `evt_` id and a non-empty type (both ≤ 255 bytes), a kind that
//!   matches its type, and no control character in either (they are stored as text);
//! - a verified header implies an untouched body and a header carrying a genuine signature;
//!   an untouched genuine header always verifies; a header without `t=` or `v1=` is
//!   refused as malformed.
//!
//! The seed is printed. Reproduce with `FACTURE_FUZZ_SEED=<seed>` (and
//! `FACTURE_FUZZ_CASES=<n>` for a longer run); each case derives its own generator from
//! (seed, case index), so a failing case index is enough to replay it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use facture_core::stripe::{decode_event, sign, verify, EventKind, SignatureError};

const NOW: i64 = 1_800_000_000;
const TOLERANCE: u64 = 300;
const DEFAULT_SEED: u64 = 0x5EED_FAC7_0E5D_2026;
const DEFAULT_CASES: usize = 20_000;

fn secrets() -> Vec<String> {
    vec!["whsec_fuzz_old".into(), "whsec_fuzz_new".into()]
}

// ---------------------------------------------------------------------------------------
// A small deterministic generator (xorshift64*, seeded through splitmix64).

struct Rng(u64);

impl Rng {
    fn new(seed: u64, case: u64) -> Self {
        // splitmix64 of (seed, case): distinct, never-zero states per case.
        let mut z = seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(z | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A position in 0..=len.
    fn position(&mut self, len: usize) -> usize {
        self.below(len + 1)
    }
}

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let raw = raw.trim();
    match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------
// Inputs

/// Every Stripe fixture as a webhook body: the complete events, and each bare object
/// wrapped in an event envelope.
fn fixture_bodies() -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/stripe");
    let mut bodies = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(format!("{root}/events"))
        .expect("tests/fixtures/stripe/events")
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        bodies.push((name, std::fs::read(&path).unwrap()));
    }
    for (file, event_type) in [
        ("checkout_session.json", "checkout.session.completed"),
        ("payment_intent.json", "payment_intent.payment_failed"),
        ("charge.json", "charge.succeeded"),
        ("refund.json", "charge.refund.updated"),
    ] {
        let object = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let body = format!(
            r#"{{"id":"evt_wrapped_{}","object":"event","created":1700000000,"type":"{event_type}","data":{{"object":{object}}}}}"#,
            file.trim_end_matches(".json")
        );
        bodies.push((format!("wrapped {file}"), body.into_bytes()));
    }
    // The published envelope as is (its object is a plan).
    bodies.push((
        "event.json".into(),
        std::fs::read(format!("{root}/event.json")).unwrap(),
    ));
    // Each one compact too (what Stripe actually sends is not pretty-printed), and two
    // minimal events: smaller inputs, so more cases per second.
    let compact: Vec<(String, Vec<u8>)> = bodies
        .iter()
        .map(|(name, body)| {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap();
            (
                format!("{name} (compact)"),
                serde_json::to_vec(&value).unwrap(),
            )
        })
        .collect();
    bodies.extend(compact);
    bodies.push((
        "minimal session".into(),
        br#"{"id":"evt_min_1","object":"event","type":"checkout.session.completed","created":1700000000,"data":{"object":{"id":"cs_test_1","object":"checkout.session","payment_status":"paid","payment_intent":{"id":"pi_1"},"amount_total":3998,"customer_details":{"email":"a@example.fr"},"metadata":{"commande_id":"c1"}}}}"#.to_vec(),
    ));
    bodies.push((
        "minimal intent".into(),
        br#"{"id":"evt_min_2","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_2","object":"payment_intent","amount_total":1}}}"#.to_vec(),
    ));
    bodies
}

/// Fragments that break parsers: huge and non-finite numbers, escapes, invalid UTF-8,
/// structure characters.
const TOKENS: &[&[u8]] = &[
    b"99999999999999999999999999999999",
    b"-99999999999999999999999999999999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e999",
    b"-1e-999",
    b"NaN",
    b"Infinity",
    b"-0",
    b"0.0000000000000000000000000001",
    b"null",
    b"true",
    b"\"\\ud800\"",
    b"\"\\udc00\\ud800\"",
    b"\"\\u0000\"",
    b"\"\\uZZZZ\"",
    b"\"\x00\"",
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\",
    b"{}",
    b"[]",
    b"\"\"",
    b"\"evt_\"",
    b"\"id\":\"evt_x\",",
    b"\"type\":\"\",",
    b"\"data\":null,",
];

/// Whole-field replacements that keep the rest of the event valid.
const FIELD_SWAPS: &[(&str, &str)] = &[
    ("\"id\": \"evt_", "\"id\": \"cus_"),
    ("\"id\": \"evt_", "\"id\": 5, \"x\": \"evt_"),
    ("\"id\": \"evt_", "\"id\": \"evt_\\u0000"),
    ("\"id\": \"evt_", "\"id\": \"evt_\\n\\t"),
    ("\"id\": \"evt_", "\"id\": \"\", \"y\": \""),
    ("\"type\": \"", "\"type\": \"\\u0000"),
    ("\"type\": \"", "\"type\": \"\\u001b[31m"),
    ("\"type\": \"", "\"type\": \"\", \"z\": \""),
    ("\"object\": \"event\"", "\"object\": \"list\""),
    ("\"object\": \"event\"", "\"object\": null"),
    (
        "\"created\": ",
        "\"created\": 99999999999999999999999, \"c\": ",
    ),
    ("\"created\": ", "\"created\": -1e999, \"c\": "),
    ("\"amount_total\": ", "\"amount_total\": 1e999, \"a\": "),
    (
        "\"amount_total\": ",
        "\"amount_total\": 99999999999999999999999, \"a\": ",
    ),
    ("\"metadata\": {", "\"metadata\": [{"),
    ("\"data\": {", "\"data\": [], \"d\": {"),
    (
        "\"payment_intent\": ",
        "\"payment_intent\": {\"id\": 7}, \"p\": ",
    ),
];

fn mutate_body(rng: &mut Rng, body: &mut Vec<u8>, others: &[(String, Vec<u8>)]) {
    match rng.below(12) {
        0 => {
            if !body.is_empty() {
                let i = rng.below(body.len());
                body[i] = rng.next() as u8;
            }
        }
        1 => {
            if !body.is_empty() {
                let i = rng.below(body.len());
                body[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let at = rng.position(body.len());
            body.truncate(at);
        }
        3 => {
            let at = rng.position(body.len());
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            body.splice(at..at, bytes);
        }
        4 => {
            let at = rng.position(body.len());
            let token = rng.pick(TOKENS);
            body.splice(at..at, token.iter().copied());
        }
        5 => {
            // A number of the body replaced by a huge or non-finite one.
            let digits: Vec<usize> = body
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_digit())
                .map(|(i, _)| i)
                .collect();
            if !digits.is_empty() {
                let start = *rng.pick(&digits);
                let end = body[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(body.len(), |n| start + n);
                let token = rng.pick(&TOKENS[..10]);
                body.splice(start..end, token.iter().copied());
            }
        }
        6 => {
            // Deep nesting, inside the event or as the whole body.
            let depth = *rng.pick(&[2usize, 127, 128, 129, 300, 3_000]);
            let (open, close): (&[u8], &[u8]) = if rng.one_in(2) {
                (b"[", b"]")
            } else {
                (b"{\"a\":", b"}")
            };
            let nested: Vec<u8> = [open.repeat(depth), b"1".to_vec(), close.repeat(depth)].concat();
            if rng.one_in(3) {
                *body = nested;
            } else {
                let text = String::from_utf8_lossy(body).into_owned();
                let nested = String::from_utf8_lossy(&nested).into_owned();
                *body = text
                    .replacen(
                        "\"metadata\": {",
                        &format!("\"metadata\": {{\"deep\": {nested},"),
                        1,
                    )
                    .into_bytes();
            }
        }
        7 => {
            if !body.is_empty() {
                let start = rng.below(body.len());
                let end = start + rng.below((body.len() - start).min(64) + 1);
                body.drain(start..end);
            }
        }
        8 => {
            if !body.is_empty() {
                let start = rng.below(body.len());
                let end = start + rng.below((body.len() - start).min(64) + 1);
                let copy = body[start..end].to_vec();
                let at = rng.position(body.len());
                body.splice(at..at, copy);
            }
        }
        9 => {
            // Splice: this body's head, another's tail.
            let other = &rng.pick(others).1;
            let head = rng.position(body.len());
            let tail = rng.position(other.len());
            body.truncate(head);
            body.extend_from_slice(&other[tail..]);
        }
        10 => {
            let (from, to) = rng.pick(FIELD_SWAPS);
            let text = String::from_utf8_lossy(body).into_owned();
            *body = text.replacen(from, to, 1).into_bytes();
        }
        _ => {
            // A very long string value.
            let long = "é".repeat(*rng.pick(&[127usize, 128, 300, 3_000]));
            let text = String::from_utf8_lossy(body).into_owned();
            let target = *rng.pick(&["\"id\": \"evt_", "\"type\": \"", "\"customer_email\": \""]);
            *body = text
                .replacen(target, &format!("{target}{long}"), 1)
                .into_bytes();
        }
    }
}

/// A header for `body`: genuine or mutated. Returns the header and the signatures (hex) a
/// verification may legitimately match.
fn header_for(rng: &mut Rng, body: &[u8]) -> (String, Vec<String>, bool) {
    let all = secrets();
    let secret = rng.pick(&all).clone();
    let skew = rng.below(2 * TOLERANCE as usize + 1) as i64 - TOLERANCE as i64;
    let genuine = sign(body, &secret, NOW + skew);
    let sig = genuine.split_once(",v1=").unwrap().1.to_owned();
    let t = NOW + skew;
    let random_sig = |rng: &mut Rng| -> String {
        let bytes: Vec<u8> = (0..4).flat_map(|_| rng.next().to_le_bytes()).collect();
        hex::encode(bytes)
    };
    let mut valid_sigs = vec![sig.clone()];
    let mut untouched = false;
    let header = match rng.below(12) {
        0 => {
            untouched = true;
            genuine
        }
        1 => {
            // Byte-level damage (a header is text: invalid UTF-8 is replaced).
            let mut bytes = genuine.into_bytes();
            for _ in 0..1 + rng.below(3) {
                match rng.below(4) {
                    0 if !bytes.is_empty() => {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                    1 => {
                        let at = rng.position(bytes.len());
                        bytes.truncate(at);
                    }
                    2 => {
                        let at = rng.position(bytes.len());
                        let token = rng.pick(TOKENS);
                        bytes.splice(at..at, token.iter().copied());
                    }
                    _ if !bytes.is_empty() => {
                        let start = rng.below(bytes.len());
                        let end = start + rng.below(bytes.len() - start + 1);
                        bytes.drain(start..end);
                    }
                    _ => {}
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        2 => {
            // Many v1 entries, the genuine one somewhere (or nowhere).
            let n = *rng.pick(&[2usize, 10, 15, 16, 17, 100, 1_000]);
            let genuine_at = if rng.one_in(4) {
                None
            } else {
                Some(rng.below(n))
            };
            let mut h = format!("t={t}");
            for i in 0..n {
                let s = if genuine_at == Some(i) {
                    sig.clone()
                } else {
                    random_sig(rng)
                };
                h.push_str(",v1=");
                h.push_str(&s);
            }
            h
        }
        3 => format!("t=,v1={sig}"),
        4 => {
            let t = rng.pick(&[
                "99999999999999999999999",
                "-9223372036854775809",
                "9223372036854775808",
                "+1800000000",
                " 1800000000",
                "1800000000 ",
                "0x6B49D200",
                "1.8e9",
                "１８",
                "",
                "=",
            ]);
            format!("t={t},v1={sig}")
        }
        5 => {
            // Duplicate timestamps: the last one wins.
            format!("t={t},v1={sig},t={}", NOW - 100_000)
        }
        6 => match rng.below(4) {
            0 => format!("v1={sig}"),
            1 => format!("t={t}"),
            2 => format!("t={t},v0={sig},v2={sig}"),
            _ => format!("T={t},V1={sig}"),
        },
        7 => {
            // Genuinely signed, at an extreme timestamp.
            let t = *rng.pick(&[
                i64::MIN,
                i64::MIN + 1,
                -1,
                0,
                NOW - 301,
                NOW + 301,
                i64::MAX,
            ]);
            let h = sign(body, &secret, t);
            valid_sigs.push(h.split_once(",v1=").unwrap().1.to_owned());
            h
        }
        8 => {
            let sep = rng.pick(&[", ", " , ", ";", ",,", "\t,"]);
            genuine.replace(',', sep)
        }
        9 => {
            let many = ",x=y".repeat(2_000);
            let junk = *rng.pick(&[
                ",é=ü",
                ",\u{0}",
                ",v1=",
                ",=,=,",
                ",v1=\u{FFFD}",
                ",t",
                many.as_str(),
            ]);
            format!("{genuine}{junk}")
        }
        10 => sign(body, "whsec_someone_else", t),
        _ => {
            // Another case's signature bytes, hex-mangled.
            format!("t={t},v1={}", sig.to_uppercase())
        }
    };
    (header, valid_sigs, untouched)
}

// ---------------------------------------------------------------------------------------
// Checks

#[derive(Debug, Default)]
struct Tally {
    decoded: usize,
    refused_body: usize,
    verified: usize,
    malformed: usize,
    no_match: usize,
    out_of_tolerance: usize,
}

fn check_decode(body: &[u8], tally: &mut Tally) {
    match decode_event(body) {
        Ok(event) => {
            tally.decoded += 1;
            assert!(event.id.starts_with("evt_"), "id {:?}", event.id);
            assert!(event.id.len() <= 255, "id of {} bytes", event.id.len());
            assert!(!event.event_type.is_empty() && event.event_type.len() <= 255);
            for (what, s) in [("id", &event.id), ("type", &event.event_type)] {
                assert!(!s.chars().any(char::is_control), "{what} {s:?}");
            }
            assert_eq!(event.kind, EventKind::from_type(&event.event_type));
            let _ = (
                event.session_id(),
                event.payment_intent_id(),
                event.metadata("commande_id"),
                event.is_paid(),
            );
        }
        Err(e) => {
            tally.refused_body += 1;
            assert!(!e.to_string().is_empty());
        }
    }
}

fn check_verify(
    header: &str,
    body: &[u8],
    signed_body: &[u8],
    valid_sigs: &[String],
    untouched: bool,
    tally: &mut Tally,
) {
    let result = verify(header, body, &secrets(), TOLERANCE, NOW);
    match &result {
        Ok(()) => {
            tally.verified += 1;
            assert_eq!(body, signed_body, "verified a body that was changed");
            let lower = header.to_lowercase();
            assert!(
                valid_sigs.iter().any(|s| lower.contains(s.as_str())),
                "verified without a genuine signature: {header:?}"
            );
        }
        Err(e) => {
            match e {
                SignatureError::Malformed(_) => tally.malformed += 1,
                SignatureError::NoMatch => tally.no_match += 1,
                SignatureError::OutOfTolerance { .. } => tally.out_of_tolerance += 1,
            }
            assert!(matches!(
                e.code(),
                "invalid_signature" | "timestamp_out_of_tolerance"
            ));
            assert!(!e.to_string().is_empty());
        }
    }
    if untouched && body == signed_body {
        assert_eq!(result, Ok(()), "a genuine header was refused: {header:?}");
    }
    if !header.contains("t=") || !header.contains("v1=") {
        assert!(
            matches!(result, Err(SignatureError::Malformed(_))),
            "{header:?}: {result:?}"
        );
    }
}

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
    format!("{} bytes: {text:?}", bytes.len())
}

// ---------------------------------------------------------------------------------------

#[test]
fn the_named_bad_inputs_are_refused_cleanly() {
    let body = fixture_bodies().remove(1).1;
    let mut tally = Tally::default();
    let good = sign(&body, "whsec_fuzz_new", NOW);
    let sig = good.split_once(",v1=").unwrap().1.to_owned();

    // Truncated JSON: every prefix of a real event.
    for end in 0..body.len() {
        check_decode(&body[..end], &mut tally);
        assert!(decode_event(&body[..end]).is_err(), "prefix of {end} bytes");
    }
    // Huge numbers, deep nesting, invalid UTF-8 in the fields facture reads.
    for bad in [
        &br#"{"id":"evt_1","type":"x","created":99999999999999999999999,"data":{"object":{}}}"#[..],
        br#"{"id":"evt_1","type":"x","created":1e999,"data":{"object":{}}}"#,
        br#"{"id":"evt_1","type":"x","data":{"object":{"amount_total":1e999}}}"#,
        br#"{"id":"evt_\u0000","type":"x","data":{"object":{}}}"#,
        br#"{"id":"evt_1","type":"\u0000","data":{"object":{}}}"#,
        br#"{"id":"evt_1","type":"a\nb","data":{"object":{}}}"#,
        // A raw DEL is valid inside a JSON string (cargo fuzz found this one).
        b"{\"id\":\"evt_1\",\"type\":\"x\",\"data\":{\"object\":{\"object\":\"checkout.sessi\x7fn\"}}}",
        br#"{"id":"evt_\ud800","type":"x","data":{"object":{}}}"#,
        b"{\"id\":\"evt_\xff\",\"type\":\"x\",\"data\":{\"object\":{}}}",
        b"{\"id\":\"evt_1\",\"type\":\"\xc3\x28\",\"data\":{\"object\":{}}}",
        &[b'['; 100_000],
    ] {
        check_decode(bad, &mut tally);
        assert!(decode_event(bad).is_err(), "{}", shown(bad));
    }
    let deep = format!(
        r#"{{"id":"evt_1","type":"x","data":{{"object":{{"metadata":{}1{}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(decode_event(deep.as_bytes()).is_err());
    // A huge amount is not a number facture can use: decoded, without an amount.
    let e = decode_event(
        br#"{"id":"evt_1","type":"x","data":{"object":{"amount_total":99999999999999999999999}}}"#,
    )
    .unwrap();
    assert_eq!(e.object.amount_total, None);

    // Ten v1 signatures, the genuine one last; empty t=; no t=; huge t=.
    let mut ten = format!("t={NOW}");
    for _ in 0..9 {
        ten.push_str(&format!(",v1={}", "ab".repeat(32)));
    }
    ten.push_str(&format!(",v1={sig}"));
    assert_eq!(verify(&ten, &body, &secrets(), TOLERANCE, NOW), Ok(()));
    for header in [
        format!("t=,v1={sig}"),
        format!("v1={sig}"),
        format!("t=99999999999999999999999,v1={sig}"),
        format!("t={NOW}"),
        String::new(),
    ] {
        let result = verify(&header, &body, &secrets(), TOLERANCE, NOW);
        assert!(
            matches!(result, Err(SignatureError::Malformed(_))),
            "{header:?}: {result:?}"
        );
    }
    // An empty v1= is a signature that matches nothing.
    let empty = verify(&format!("t={NOW},v1="), &body, &secrets(), TOLERANCE, NOW);
    assert_eq!(empty, Err(SignatureError::NoMatch));
    // Extreme timestamps, genuinely signed: out of tolerance, no overflow.
    for t in [i64::MIN, i64::MAX, 0, -1] {
        let header = sign(&body, "whsec_fuzz_old", t);
        let result = verify(&header, &body, &secrets(), TOLERANCE, NOW);
        assert!(
            matches!(result, Err(SignatureError::OutOfTolerance { .. })),
            "{t}: {result:?}"
        );
    }
}

#[test]
fn mutated_fixtures_and_headers_never_panic_and_give_well_formed_answers() {
    let seed = env_number("FACTURE_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_number("FACTURE_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    println!("fuzz_inputs: seed {seed:#x}, {cases} cases (FACTURE_FUZZ_SEED / FACTURE_FUZZ_CASES)");
    let bodies = fixture_bodies();
    let mut tally = Tally::default();
    for (name, body) in &bodies {
        // The fixtures themselves are events (sanity: the loop starts from valid input).
        let event = decode_event(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(event.id.starts_with("evt_"), "{name}");
    }

    let started = Instant::now();
    for case in 0..cases as u64 {
        let mut rng = Rng::new(seed, case);
        let (name, original) = rng.pick(&bodies);
        let mut body = original.clone();
        let mutations = if rng.one_in(8) { 0 } else { 1 + rng.below(4) };
        for _ in 0..mutations {
            mutate_body(&mut rng, &mut body, &bodies);
        }
        // The header is for the original body (a changed body must then be refused), for
        // the mutated one, or (most of the time, to spend the time on the header rather
        // than on hashing) for a short piece of it, verified against that piece.
        let (signed_body, verified_body) = match rng.below(6) {
            0 => (original.clone(), body.clone()),
            1 => (body.clone(), body.clone()),
            _ => {
                let piece = body[..body.len().min(rng.below(256))].to_vec();
                (piece.clone(), piece)
            }
        };
        let (header, valid_sigs, untouched) = header_for(&mut rng, &signed_body);

        let outcome = catch_unwind(AssertUnwindSafe(|| {
            check_decode(&body, &mut tally);
            check_verify(
                &header,
                &verified_body,
                &signed_body,
                &valid_sigs,
                untouched,
                &mut tally,
            );
        }));
        if let Err(panic) = outcome {
            eprintln!(
                "fuzz_inputs: case {case} failed (seed {seed:#x}), from {name}, {mutations} \
                 mutation(s)\n  header: {}\n  body: {}",
                shown(header.as_bytes()),
                shown(&body)
            );
            std::panic::resume_unwind(panic);
        }
    }
    let elapsed = started.elapsed();
    println!("fuzz_inputs: {cases} cases in {elapsed:.2?}: {tally:?}");

    // Every kind of answer was reached: the mutations are doing their job.
    if cases >= 1_000 {
        for (what, n) in [
            ("decoded", tally.decoded),
            ("refused bodies", tally.refused_body),
            ("verified", tally.verified),
            ("malformed headers", tally.malformed),
            ("unmatched signatures", tally.no_match),
            ("stale timestamps", tally.out_of_tolerance),
        ] {
            assert!(
                n > cases / 100,
                "only {n} {what} in {cases} cases: {tally:?}"
            );
        }
    }
}
