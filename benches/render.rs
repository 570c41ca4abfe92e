//! Rendering one invoice PDF (the sample document, default company settings).
//!
//! `cargo bench --bench render -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use facture_core::config::{Settings, DEFAULT_TOML};
use facture_core::pdf::{render_invoice, sample_document};
use figment::providers::{Format, Toml};
use figment::Figment;

fn render(c: &mut Criterion) {
    let company = Settings::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
        .expect("default settings load")
        .company;
    let doc = sample_document(&company);
    let size = render_invoice(&doc, &company)
        .expect("sample renders")
        .len();
    eprintln!("sample invoice: {size} bytes");
    c.bench_function("render_invoice", |b| {
        b.iter(|| render_invoice(black_box(&doc), black_box(&company)).expect("renders"))
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
