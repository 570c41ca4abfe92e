//! The invoice PDF read back by independent tools: `pdftotext` / `pdfinfo` (poppler-utils)
//! and `qpdf --check`. A missing tool skips the test with a message, except under CI
//! (`CI` set), where it fails: CI installs them.

use std::path::Path;
use std::process::Command;

use facture_core::config::{CompanySettings, Settings, VatRegime, DEFAULT_TOML};
use facture_core::money::Cents;
use facture_core::pdf::{render_invoice, sample_document, InvoiceDocument};
use figment::providers::{Format, Toml};
use figment::Figment;

fn company() -> CompanySettings {
    Settings::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
        .expect("default settings")
        .company
}

fn franchise() -> CompanySettings {
    CompanySettings {
        vat_regime: VatRegime::Franchise,
        ..company()
    }
}

/// Whether `tool` can be run; see the module comment for what happens when it cannot.
fn have(tool: &str) -> bool {
    match Command::new(tool).arg("-v").output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("{tool} is required under CI (apt-get install poppler-utils qpdf)");
            }
            eprintln!("skipping: {tool} is not installed (apt-get install poppler-utils qpdf)");
            false
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

/// Runs `tool args… file` on the PDF and returns its standard output.
fn run(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invoice.pdf");
    std::fs::write(&path, pdf).unwrap();
    run_on(tool, args, &path)
}

fn run_on(tool: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// pdftotext prints no-break spaces as spaces; compare with single spaces throughout.
fn normalize(s: &str) -> String {
    s.replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text in physical layout, so a label and its amount come out on one line.
fn text(pdf: &[u8]) -> String {
    normalize(&run("pdftotext", &["-layout"], pdf))
}

fn page_text(pdf: &[u8], page: u32) -> String {
    let p = page.to_string();
    normalize(&run("pdftotext", &["-layout", "-f", &p, "-l", &p], pdf))
}

fn long_description(n: usize) -> String {
    let sentence = "Relecture attentive du manuscrit, chapitre après chapitre, avec correction de \
                    l’orthographe, de la grammaire et de la typographie. ";
    let mut s = String::new();
    while s.chars().count() + sentence.chars().count() < n - 30 {
        s.push_str(sentence);
    }
    s.push_str("Fin de la description.");
    s
}

#[test]
fn pdftotext_finds_number_names_totals_and_mentions() {
    if !have("pdftotext") {
        return;
    }
    let company = company();
    let doc = sample_document(&company);
    let t = text(&render_invoice(&doc, &company).unwrap());
    for expected in [
        doc.number.as_str(),
        "FACTURE",
        &company.name,
        &doc.buyer.name,
        &doc.buyer.email,
        "SIREN 123456789",
        "FR12123456789",
        "Date d’émission : 14/03/2025",
        "Total HT 1 250,00 €",
        "TVA 20 % 250,00 €",
        "Total TTC 1 500,00 €",
        "Payée le 14/03/2025 par carte bancaire (Stripe)",
        "pi_EXEMPLE0000000000000000",
        "Acquittée",
        "Pénalités de retard : trois fois le taux d'intérêt légal.",
        "Indemnité forfaitaire pour frais de recouvrement",
        "40 €",
        "Page 1/1",
    ] {
        let expected = normalize(expected);
        assert!(t.contains(&expected), "{expected:?} not in:\n{t}");
    }
    // The three totals, exactly as Cents::format_fr writes them.
    for amount in [doc.totals.ht, doc.totals.tva, doc.totals.ttc] {
        assert!(t.contains(&normalize(&amount.format_fr())), "{amount}");
    }
    assert!(!t.contains("293 B"));
}

#[test]
fn qpdf_check_passes() {
    if !have("qpdf") {
        return;
    }
    let company = company();
    let mut long = sample_document(&company);
    long.order_description = long_description(3000);
    let mut huge = sample_document(&company);
    huge.order_description = long_description(40_000);
    let mut emoji = sample_document(&company);
    emoji.buyer.name = "Zoé 🎉 (東京)".into();
    let franchise = franchise();
    for (name, doc, company) in [
        ("sample", sample_document(&company), &company),
        ("long", long, &company),
        ("huge", huge, &company),
        ("emoji", emoji, &company),
        ("franchise", sample_document(&franchise), &franchise),
    ] {
        let out = run(
            "qpdf",
            &["--check"],
            &render_invoice(&doc, company).unwrap(),
        );
        assert!(
            out.contains("No syntax or stream encoding errors found"),
            "{name}: {out}"
        );
    }
}

#[test]
fn pdfinfo_reads_the_metadata() {
    if !have("pdfinfo") {
        return;
    }
    let company = company();
    let doc = sample_document(&company);
    let info = run("pdfinfo", &[], &render_invoice(&doc, &company).unwrap());
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .to_owned()
    };
    assert_eq!(field("Title"), format!("Facture {}", doc.number));
    assert_eq!(field("Author"), company.name);
    assert!(field("CreationDate").contains("2025"), "{info}");
    assert!(field("CreationDate").contains("Mar 14"), "{info}");
    assert_eq!(field("Pages"), "1");
    assert!(field("Page size").contains("(A4)"), "{info}");
}

#[test]
fn a_3000_character_description_ends_on_page_two() {
    if !have("pdftotext") {
        return;
    }
    let company = company();
    let mut doc = sample_document(&company);
    doc.order_description = long_description(3000);
    assert!((2900..=3000).contains(&doc.order_description.chars().count()));
    let pdf = render_invoice(&doc, &company).unwrap();
    let info = if have("pdfinfo") {
        run("pdfinfo", &[], &pdf)
    } else {
        String::from("Pages: 2")
    };
    assert!(
        info.lines()
            .any(|l| l.starts_with("Pages:") && l.ends_with(" 2")),
        "{info}"
    );
    let (one, two) = (page_text(&pdf, 1), page_text(&pdf, 2));
    assert!(one.contains("Relecture attentive du manuscrit"));
    assert!(one.contains("Page 1/2"));
    assert!(!one.contains("Fin de la description."));
    assert!(two.contains("Fin de la description."), "{two}");
    assert!(two.contains("Page 2/2"));
    // Nothing lost at the page break: every sentence is there, in one piece.
    let all = format!("{one} {two}");
    let expected = doc.order_description.matches("Relecture attentive").count();
    assert_eq!(all.matches("Relecture attentive").count(), expected);
    // The totals follow the description.
    assert!(all.contains("Total TTC 1 500,00 €"));
}

#[test]
fn an_emoji_in_a_name_prints_a_question_mark() {
    if !have("pdftotext") {
        return;
    }
    let company = company();
    let mut doc = sample_document(&company);
    doc.buyer.name = "Zoé 🎉 Martin".into();
    let t = text(&render_invoice(&doc, &company).unwrap());
    assert!(t.contains("Zoé ? Martin"), "{t}");
}

#[test]
fn franchise_shows_293_b_and_not_the_indemnity() {
    if !have("pdftotext") {
        return;
    }
    let company = franchise();
    let doc = sample_document(&company);
    assert!(doc.buyer.is_business);
    let t = text(&render_invoice(&doc, &company).unwrap());
    assert!(t.contains("TVA non applicable, art. 293 B du CGI"), "{t}");
    assert!(!t.contains("Indemnité forfaitaire"), "{t}");
    assert!(!t.contains("40 €"), "{t}");
    // No VAT line; HT = TTC.
    assert!(t.contains("Total HT 1 500,00 €"), "{t}");
    assert!(t.contains("Total TTC 1 500,00 €"), "{t}");
    assert!(!t.contains("TVA 0"), "{t}");
}

#[test]
fn standard_business_shows_the_indemnity_and_not_293_b() {
    if !have("pdftotext") {
        return;
    }
    let company = company();
    let t = text(&render_invoice(&sample_document(&company), &company).unwrap());
    assert!(t.contains("Indemnité forfaitaire"), "{t}");
    assert!(t.contains("40 €"), "{t}");
    assert!(!t.contains("293 B"), "{t}");
}

/// Poppler computes word boxes from its own copy of the Helvetica metrics: the amounts'
/// right edges land on the column edges, which checks our width table independently.
#[test]
fn amounts_end_exactly_on_their_column_edge() {
    if !have("pdftotext") {
        return;
    }
    let company = company();
    let sample = sample_document(&company);
    // Wide and narrow digits and the euro sign, at sizes 9 and 10.5.
    let doc = InvoiceDocument::single_line(
        sample.number,
        sample.issued_on,
        sample.buyer,
        sample.order_title,
        sample.order_description,
        Cents(1_111_111),
        sample.vat_rate,
        sample.payment,
    );
    let xml = run(
        "pdftotext",
        &["-bbox"],
        &render_invoice(&doc, &company).unwrap(),
    );
    let right_margin = 595.28 - 56.0;
    let euro_edges: Vec<f64> = xml
        .lines()
        .filter(|l| l.trim_end().ends_with(">€</word>"))
        .map(|l| {
            let at = l.find("xMax=\"").unwrap() + 6;
            l[at..].split('"').next().unwrap().parse().unwrap()
        })
        .collect();
    // Totals block: HT, TVA and TTC end on the right margin; in the table, the total ends
    // 6 pt inside it and the unit price on its column edge (x = 404).
    let ending_at = |edge: f64| {
        euro_edges
            .iter()
            .filter(|x| (*x - edge).abs() < 0.05)
            .count()
    };
    assert_eq!(ending_at(right_margin), 3, "{euro_edges:?}");
    assert_eq!(ending_at(right_margin - 6.0), 1, "{euro_edges:?}");
    assert_eq!(ending_at(404.0), 1, "{euro_edges:?}");
}

#[test]
fn ordinary_invoice_is_small_and_reproducible() {
    let company = company();
    let doc = sample_document(&company);
    let a = render_invoice(&doc, &company).unwrap();
    let b = render_invoice(&doc, &company).unwrap();
    assert!(a.len() < 10 * 1024, "{} bytes", a.len());
    assert_eq!(a, b, "same input, same bytes");
    let parsed = lopdf::Document::load_mem(&a).expect("lopdf reads it back");
    assert_eq!(parsed.get_pages().len(), 1);
}
