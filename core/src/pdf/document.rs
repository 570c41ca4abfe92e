//! Assembles the page content streams into a PDF file with lopdf: page tree, fonts,
//! document information and a deterministic file identifier.

use chrono::{Datelike, NaiveDate};
use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use sha2::{Digest, Sha256};

use super::canvas;
use super::layout::{PAGE_HEIGHT, PAGE_WIDTH};
use super::PdfError;

/// Above this much content in all, the content streams are Flate-compressed (lopdf always
/// has flate2). Compressing costs about 300 µs for an ordinary invoice, three times the
/// whole rendering budget, for a file that is already well under 10 KB uncompressed, so
/// only long multi-page documents (rare) are compressed.
const COMPRESS_ABOVE: usize = 16 * 1024;

/// What goes in the document information dictionary.
pub(crate) struct Meta<'a> {
    pub title: &'a str,
    pub author: &'a str,
    pub subject: &'a str,
    /// The document's own date (its issue date): rendering never reads the clock.
    pub created_on: NaiveDate,
    /// Identifies the document in the file identifier, with the content hash.
    pub number: &'a str,
}

pub(crate) fn assemble(pages: Vec<Vec<u8>>, meta: &Meta<'_>) -> Result<Vec<u8>, PdfError> {
    let file_id = file_identifier(&pages, meta);
    let content_len: usize = pages.iter().map(Vec::len).sum();
    let compress = content_len > COMPRESS_ABOVE;

    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let fonts = canvas::font_resources(&mut doc);

    let mut kids = Vec::with_capacity(pages.len());
    let count = pages.len() as i64;
    for content in pages {
        let mut stream = Stream::new(lopdf::Dictionary::new(), content);
        if compress {
            // On failure the stream simply stays uncompressed.
            let _ = stream.compress();
        }
        let content_id = doc.add_object(stream);
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(Object::Reference(page_id));
    }
    doc.set_object(
        pages_id,
        dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(PAGE_WIDTH), Object::Real(PAGE_HEIGHT)],
            "Resources" => dictionary! { "Font" => fonts },
        },
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        "Lang" => Object::string_literal("fr-FR"),
        "ViewerPreferences" => dictionary! { "DisplayDocTitle" => true },
    });
    let date = pdf_date(meta.created_on);
    let info_id = doc.add_object(dictionary! {
        "Title" => text_string(meta.title),
        "Author" => text_string(meta.author),
        "Subject" => text_string(meta.subject),
        "Creator" => Object::string_literal("facture"),
        "Producer" => Object::string_literal("facture"),
        "CreationDate" => Object::string_literal(date.clone()),
        "ModDate" => Object::string_literal(date),
    });
    let id = Object::String(file_id.to_vec(), StringFormat::Hexadecimal);
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    doc.trailer.set("ID", vec![id.clone(), id]);

    let mut out = Vec::with_capacity(content_len.min(64 * 1024) + 2048);
    doc.save_to(&mut out).map_err(PdfError::Write)?;
    Ok(out)
}

/// First 16 bytes of SHA-256 over the invoice number and everything printed: the same
/// invoice always gets the same identifier, a different one (or a changed one) another.
fn file_identifier(pages: &[Vec<u8>], meta: &Meta<'_>) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [meta.number, meta.title, meta.author, meta.subject] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(pdf_date(meta.created_on).as_bytes());
    for page in pages {
        h.update((page.len() as u64).to_be_bytes());
        h.update(page);
    }
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// `D:YYYYMMDD`: the PDF date format, to the day (all the invoice knows).
fn pdf_date(d: NaiveDate) -> String {
    format!("D:{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

/// A PDF text string: plain bytes when ASCII, UTF-16BE with a byte-order mark otherwise
/// (so accents in the title or the company name survive in the document properties).
fn text_string(s: &str) -> Object {
    if s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        Object::string_literal(s)
    } else {
        let mut bytes = Vec::with_capacity(2 + s.len() * 2);
        bytes.extend_from_slice(&[0xFE, 0xFF]);
        for unit in s.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        Object::String(bytes, StringFormat::Hexadecimal)
    }
}
