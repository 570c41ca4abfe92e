//! `facture render-sample`: the configured company's invoice with a fake customer.

use std::path::Path;

use facture_core::config::Settings;
use facture_core::pdf::{render_invoice, sample_document};

pub fn run(settings: &Settings, out: &Path) -> anyhow::Result<()> {
    let doc = sample_document(&settings.company);
    let bytes = render_invoice(&doc, &settings.company)?;
    std::fs::write(out, &bytes)?;
    println!(
        "{} ({} bytes, invoice {})",
        out.display(),
        bytes.len(),
        doc.number
    );
    Ok(())
}
