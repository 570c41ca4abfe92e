//! Verifying one Stripe-Signature header (HMAC-SHA256 over a real-sized
//! `checkout.session.completed` body), as the webhook path does for every request.
//!
//! `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use facture::commands::simulate_payment::completed_event;
use facture_core::stripe::{sign, verify};

const NOW: i64 = 1_800_000_000;

fn bench_verify(c: &mut Criterion) {
    let body = completed_event("evt_bench_0001", "cs_test_bench_0001", 12_000, NOW);
    eprintln!("event body: {} bytes", body.len());
    let one = vec!["whsec_bench_primary".to_owned()];
    let header = sign(&body, &one[0], NOW);
    c.bench_function("verify_signature", |b| {
        b.iter(|| {
            verify(
                black_box(&header),
                black_box(&body),
                black_box(&one),
                300,
                NOW,
            )
            .expect("valid signature")
        })
    });
    // During a secret rotation the header is checked against the old secret first.
    let rotated = vec![
        "whsec_bench_old".to_owned(),
        "whsec_bench_primary".to_owned(),
    ];
    c.bench_function("verify_signature_second_secret", |b| {
        b.iter(|| {
            verify(
                black_box(&header),
                black_box(&body),
                black_box(&rotated),
                300,
                NOW,
            )
            .expect("valid signature")
        })
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
