//! Unit tests of the renderer that need no external tool (those are in `core/tests/pdf.rs`).

use figment::providers::{Format, Toml};
use figment::Figment;

use super::*;
use crate::config::{Settings, DEFAULT_TOML};

fn company() -> CompanySettings {
    Settings::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
        .expect("default settings")
        .company
}

fn franchise_company() -> CompanySettings {
    CompanySettings {
        vat_regime: VatRegime::Franchise,
        ..company()
    }
}

/// The decoded content streams of every page, in order.
fn page_contents(bytes: &[u8]) -> Vec<Vec<u8>> {
    let doc = lopdf::Document::load_mem(bytes).expect("lopdf parses the PDF back");
    doc.get_pages()
        .values()
        .map(|&id| doc.get_page_content(id))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn single_line_splits_the_ttc_total() {
    let doc = sample_document(&company());
    assert_eq!(doc.totals.ttc, Cents(150_000));
    assert_eq!(doc.totals.ht, Cents(125_000));
    assert_eq!(doc.totals.tva, Cents(25_000));
    assert_eq!(doc.lines.len(), 1);
    assert_eq!(doc.lines[0].total_ht, doc.totals.ht);
    assert_eq!(doc.service_date, doc.issued_on);
}

#[test]
fn sample_renders_one_small_page_that_lopdf_reads_back() {
    let company = company();
    let bytes = render_invoice(&sample_document(&company), &company).unwrap();
    assert!(bytes.starts_with(b"%PDF-1.7"));
    assert!(bytes.len() < 10 * 1024, "{} bytes", bytes.len());
    assert!(
        !contains(&bytes, b"FlateDecode"),
        "ordinary invoices are not compressed"
    );
    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    assert_eq!(pdf.get_pages().len(), 1);
    let info = pdf.trailer.get(b"Info").unwrap().as_reference().unwrap();
    let info = pdf.get_dictionary(info).unwrap();
    assert_eq!(
        info.get(b"CreationDate").unwrap().as_str().unwrap(),
        b"D:20250314"
    );
    assert_eq!(
        info.get(b"Author").unwrap().as_str().unwrap(),
        company.name.as_bytes()
    );
    let content = &page_contents(&bytes)[0];
    // WinAnsi bytes: € is 0x80, the no-break space 0xA0, é 0xE9.
    assert!(contains(content, b"(1\xA0500,00\xA0\x80)Tj"));
    assert!(contains(
        content,
        b"(Date d\x92\xE9mission\xA0: 14/03/2025)Tj"
    ));
}

#[test]
fn same_input_same_bytes_and_id_depends_on_content() {
    let company = company();
    let doc = sample_document(&company);
    let a = render_invoice(&doc, &company).unwrap();
    let b = render_invoice(&doc.clone(), &company).unwrap();
    assert_eq!(a, b);
    let id = |bytes: &[u8]| {
        let pdf = lopdf::Document::load_mem(bytes).unwrap();
        format!("{:?}", pdf.trailer.get(b"ID").unwrap())
    };
    let mut other = doc.clone();
    other.buyer.name.push_str(" bis");
    let c = render_invoice(&other, &company).unwrap();
    assert_ne!(id(&a), id(&c));
}

#[test]
fn amounts_are_right_aligned_with_real_widths() {
    let company = company();
    let bytes = render_invoice(&sample_document(&company), &company).unwrap();
    let content = &page_contents(&bytes)[0];
    // Each amount of the totals block ends at the right margin: x + width == RIGHT.
    let right = 595.28 - 56.0;
    for (amount, font, size) in [
        ("1\u{a0}250,00\u{a0}€", canvas::Font::Regular, 9.0),
        ("250,00\u{a0}€", canvas::Font::Regular, 9.0),
        ("1\u{a0}500,00\u{a0}€", canvas::Font::Bold, 10.5),
    ] {
        let mut needle = b" Tm(".to_vec();
        needle.extend(winansi::bytes(amount));
        needle.extend_from_slice(b")Tj");
        let at = content
            .windows(needle.len())
            .rposition(|w| w == needle.as_slice())
            .unwrap_or_else(|| panic!("{amount} not drawn"));
        let before = String::from_utf8_lossy(&content[..at]);
        let tm = before.rfind("1 0 0 1 ").unwrap();
        let x: f32 = before[tm + 8..].split(' ').next().unwrap().parse().unwrap();
        let end = x + font.width(size, amount);
        assert!((end - right).abs() < 0.02, "{amount} ends at {end}");
    }
}

#[test]
fn a_long_description_continues_on_a_second_page() {
    let company = company();
    let mut doc = sample_document(&company);
    doc.order_description = long_description(3000);
    let bytes = render_invoice(&doc, &company).unwrap();
    let pages = page_contents(&bytes);
    assert_eq!(pages.len(), 2);
    assert!(contains(&pages[1], b"FIN-DE-LA-DESCRIPTION"));
    assert!(contains(&pages[0], b"(Page 1/2)Tj"));
    assert!(contains(&pages[1], b"(Page 2/2)Tj"));
}

/// About `n` characters of French prose ending with a marker.
pub(crate) fn long_description(n: usize) -> String {
    let sentence = "Relecture attentive du manuscrit, chapitre après chapitre, avec correction de \
                    l’orthographe, de la grammaire et de la typographie. ";
    let mut s = String::new();
    while s.chars().count() + sentence.len() < n - 30 {
        s.push_str(sentence);
    }
    s.push_str("FIN-DE-LA-DESCRIPTION");
    s
}

#[test]
fn huge_inputs_paginate_without_panicking() {
    let company = company();
    let mut doc = sample_document(&company);
    doc.order_description = long_description(40_000);
    doc.buyer.address = Some("ligne\n".repeat(200));
    doc.lines[0].designation = "mot ".repeat(2000) + &"x".repeat(3000);
    doc.buyer.name = "N".repeat(5000);
    let bytes = render_invoice(&doc, &company).unwrap();
    let pages = page_contents(&bytes);
    assert!(pages.len() > 5, "{} pages", pages.len());
    assert!(
        contains(&bytes, b"FlateDecode"),
        "long documents are compressed"
    );
    let n = pages.len();
    assert!(contains(
        &pages[n - 1],
        format!("(Page {n}/{n})Tj").as_bytes()
    ));
}

#[test]
fn characters_outside_winansi_become_question_marks() {
    let company = company();
    let mut doc = sample_document(&company);
    doc.buyer.name = "Émile 😀 東京".to_owned();
    let bytes = render_invoice(&doc, &company).unwrap();
    assert!(contains(&page_contents(&bytes)[0], b"(\xC9mile ? ??)Tj"));
}

#[test]
fn franchise_has_no_vat_column_and_the_293_b_mention() {
    let company = franchise_company();
    let doc = sample_document(&company);
    assert_eq!(doc.totals.tva, Cents(0));
    assert_eq!(doc.totals.ht, doc.totals.ttc);
    let bytes = render_invoice(&doc, &company).unwrap();
    let content = &page_contents(&bytes)[0];
    assert!(contains(
        content,
        b"(TVA non applicable, art. 293 B du CGI)Tj"
    ));
    assert!(!contains(content, b"Indemnit"));
    assert!(!contains(content, b"(TVA)Tj"));
    assert!(!contains(content, b"(TVA 0"));
}

#[test]
fn standard_business_has_the_indemnity_and_not_293_b() {
    let company = company();
    let bytes = render_invoice(&sample_document(&company), &company).unwrap();
    let content = &page_contents(&bytes)[0];
    assert!(contains(content, b"Indemnit\xE9 forfaitaire"));
    assert!(contains(content, b"40\xA0\x80"));
    assert!(!contains(content, b"293 B"));
    assert!(contains(content, b"(TVA 20\xA0%)Tj"));

    let mut consumer = sample_document(&company);
    consumer.buyer.is_business = false;
    let bytes = render_invoice(&consumer, &company).unwrap();
    assert!(!contains(&page_contents(&bytes)[0], b"Indemnit"));
}

#[test]
fn invalid_documents_are_refused() {
    let company = company();
    let mut doc = sample_document(&company);
    doc.totals.tva = Cents(1);
    assert!(matches!(
        render_invoice(&doc, &company),
        Err(PdfError::InvalidDocument(_))
    ));
    let mut doc = sample_document(&company);
    doc.lines.clear();
    assert!(render_invoice(&doc, &company).is_err());
    let mut doc = sample_document(&company);
    doc.number = " ".into();
    assert!(render_invoice(&doc, &company).is_err());
    // VAT charged while the company is in the franchise regime.
    let doc = sample_document(&company);
    assert!(render_invoice(&doc, &franchise_company()).is_err());
}

#[test]
fn document_round_trips_through_json() {
    let doc = sample_document(&company());
    let json = serde_json::to_string(&doc).unwrap();
    let back: InvoiceDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(back, doc);
}

/// Arbitrary text (accents, combining marks, emoji, CJK, controls, line breaks, PDF
/// delimiters, very long words) in every field: always renders, always parses back.
#[test]
fn arbitrary_text_never_breaks_rendering() {
    const POOL: &[char] = &[
        'a',
        'Z',
        '0',
        ' ',
        ' ',
        ' ',
        '\n',
        '\r',
        '\t',
        '(',
        ')',
        '\\',
        '%',
        '/',
        '<',
        '>',
        'é',
        'Ç',
        'œ',
        '€',
        '’',
        '«',
        '\u{a0}',
        '\u{202f}',
        '\u{301}',
        '\u{327}',
        '\u{200b}',
        '\u{ad}',
        '\u{1}',
        '\u{7f}',
        '\u{85}',
        '😀',
        '東',
        '\u{fe0f}',
        '\u{10ffff}',
        'ÿ',
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let company = company();
    for round in 0..60 {
        let mut text = |max: u64| -> String {
            let len = next() % max;
            (0..len)
                .map(|_| POOL[(next() % POOL.len() as u64) as usize])
                .collect()
        };
        let mut doc = sample_document(&company);
        doc.number = format!("F-{round}-{}", text(12));
        doc.buyer.name = text(80);
        doc.buyer.email = text(40);
        doc.buyer.address = Some(text(200));
        doc.buyer.siren = Some(text(20));
        doc.order_title = text(150);
        doc.order_description = text(if round % 10 == 0 { 6000 } else { 600 });
        doc.lines[0].designation = text(300);
        if let Some(p) = doc.payment.as_mut() {
            p.reference = text(100);
            p.method = text(30);
        }
        let mut company = company.clone();
        company.name = text(60) + "x";
        company.address = text(120);
        let Ok(bytes) = render_invoice(&doc, &company) else {
            // Only a blank number is refused, and "F-…" is never blank.
            panic!("round {round} was refused");
        };
        let pages = page_contents(&bytes);
        assert!(!pages.is_empty());
        for page in &pages {
            // Every operator is one we write, with the operands it takes: the strings were
            // escaped correctly whatever they held.
            let content = lopdf::content::Content::decode(page).expect("content parses");
            for op in &content.operations {
                let arity = match op.operator.as_str() {
                    "BT" | "ET" | "S" | "f" => 0,
                    "Tj" | "g" | "G" | "w" => 1,
                    "Tf" | "m" | "l" => 2,
                    "re" => 4,
                    "Tm" => 6,
                    other => panic!("unexpected operator {other}"),
                };
                assert_eq!(op.operands.len(), arity, "{op:?}");
            }
        }
        let n = pages.len();
        assert!(contains(
            &pages[n - 1],
            format!("(Page {n}/{n})Tj").as_bytes()
        ));
    }
}
