//! Rendering each mail template (subject, text and HTML bodies) from typed content.
//!
//! `cargo bench --bench templates -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use facture_core::config::{Settings, DEFAULT_TOML};
use facture_core::mail::{MailContent, Templates};
use figment::providers::{Format, Toml};
use figment::Figment;

fn templates(c: &mut Criterion) {
    let settings = Settings::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
        .expect("default settings load");
    let templates = Templates::new(&settings.mail, &settings.app).expect("templates compile");
    let mut group = c.benchmark_group("mail_render");
    for content in MailContent::samples() {
        let rendered = templates.render(&content).expect("sample renders");
        eprintln!(
            "{}: subject {} B, text {} B, html {} B",
            content.kind(),
            rendered.subject.len(),
            rendered.text.len(),
            rendered.html.len()
        );
        group.bench_function(content.kind(), |b| {
            b.iter(|| templates.render(black_box(&content)).expect("renders"))
        });
    }
    group.finish();
    let settings_clone = settings.clone();
    c.bench_function("mail_templates_new", |b| {
        b.iter(|| {
            Templates::new(black_box(&settings_clone.mail), &settings_clone.app).expect("compiles")
        })
    });
}

criterion_group!(benches, templates);
criterion_main!(benches);
