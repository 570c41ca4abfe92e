//! The invoice PDF: A4 portrait, one page for an ordinary invoice, more when a long
//! description needs them. Standard Helvetica / Helvetica-Bold with WinAnsiEncoding, laid
//! out with the fonts' real glyph widths, written directly as content-stream bytes and
//! assembled with lopdf.
//!
//! Rendering is a pure function of the invoice and the company settings: no clock, no
//! randomness, so the same input always gives the same bytes (the file identifier is
//! derived from the invoice number and the content).
//!
//! - [`mod@winansi`]: characters → WinAnsi bytes (visible `?` for what it lacks);
//! - [`mod@metrics`]: Helvetica's AFM widths;
//! - [`mod@canvas`]: measuring, line breaking, content-stream operators, font resources;
//! - [`mod@layout`]: where each section of the invoice goes, pagination;
//! - [`mod@document`]: the PDF objects around the content streams.

mod canvas;
mod document;
mod layout;
mod metrics;
mod winansi;

#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{CompanySettings, VatRegime};
use crate::money::{BasisPoints, Cents, TaxSplit};

/// Everything an invoice prints besides the seller (which comes from the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceDocument {
    pub number: String,
    pub issued_on: NaiveDate,
    /// Date of the service (or delivery), a mandatory mention.
    pub service_date: NaiveDate,
    pub buyer: Buyer,
    pub order_title: String,
    pub order_description: String,
    pub lines: Vec<InvoiceLine>,
    /// The VAT rate applied (zero in the franchise regime).
    pub vat_rate: BasisPoints,
    pub totals: TaxSplit,
    /// Set when the invoice is already paid (always, for a Checkout payment).
    pub payment: Option<PaymentInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buyer {
    pub name: String,
    pub email: String,
    /// Billing address, lines separated by `\n`.
    pub address: Option<String>,
    pub siren: Option<String>,
    pub vat_number: Option<String>,
    /// A professional customer: the fixed recovery indemnity mention applies.
    pub is_business: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub designation: String,
    pub quantity: u32,
    pub unit_price_ht: Cents,
    pub total_ht: Cents,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentInfo {
    pub paid_on: NaiveDate,
    /// How it was paid, printed after "par", e.g. `carte bancaire (Stripe)`.
    pub method: String,
    /// The payment's reference (Stripe PaymentIntent id).
    pub reference: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The invoice data is not a valid invoice (totals that do not add up, no line…).
    /// Rendering it again will not help.
    #[error("invalid invoice: {0}")]
    InvalidDocument(String),
    /// Serializing the PDF failed (writing to memory: not expected in practice).
    #[error("could not write the PDF: {0}")]
    Write(#[source] std::io::Error),
}

impl InvoiceDocument {
    /// One line for the whole order from Stripe's tax-inclusive total (what a Checkout
    /// payment gives). The service date is the issue date.
    #[allow(clippy::too_many_arguments)]
    pub fn single_line(
        number: String,
        issued_on: NaiveDate,
        buyer: Buyer,
        title: String,
        description: String,
        total_ttc: Cents,
        rate: BasisPoints,
        payment: Option<PaymentInfo>,
    ) -> Self {
        let totals = total_ttc.split_ttc(rate);
        InvoiceDocument {
            number,
            issued_on,
            service_date: issued_on,
            buyer,
            lines: vec![InvoiceLine {
                designation: title.clone(),
                quantity: 1,
                unit_price_ht: totals.ht,
                total_ht: totals.ht,
            }],
            order_title: title,
            order_description: description,
            vat_rate: rate,
            totals,
            payment,
        }
    }

    /// Checks what makes an invoice an invoice: a number, at least one line, lines adding
    /// up to the HT total, HT + TVA = TTC, no VAT in the franchise regime.
    pub fn validate(&self, company: &CompanySettings) -> Result<(), PdfError> {
        let invalid = |msg: String| Err(PdfError::InvalidDocument(msg));
        if self.number.trim().is_empty() {
            return invalid("the invoice number is empty".into());
        }
        if self.lines.is_empty() {
            return invalid(format!("invoice {} has no line", self.number));
        }
        let t = self.totals;
        if i128::from(t.ht.0) + i128::from(t.tva.0) != i128::from(t.ttc.0) {
            return invalid(format!(
                "invoice {}: total HT {} + TVA {} is not total TTC {}",
                self.number, t.ht, t.tva, t.ttc
            ));
        }
        let lines_ht: i128 = self.lines.iter().map(|l| i128::from(l.total_ht.0)).sum();
        if lines_ht != i128::from(t.ht.0) {
            return invalid(format!(
                "invoice {}: the lines add up to {} cents HT, the total says {}",
                self.number, lines_ht, t.ht
            ));
        }
        if company.vat_regime == VatRegime::Franchise && t.tva.0 != 0 {
            return invalid(format!(
                "invoice {}: {} of VAT charged although the company is in the franchise \
                 regime (art. 293 B du CGI)",
                self.number, t.tva
            ));
        }
        Ok(())
    }
}

/// Renders the invoice as PDF bytes. Pure and deterministic: the same document and
/// settings give the same bytes.
pub fn render_invoice(
    doc: &InvoiceDocument,
    company: &CompanySettings,
) -> Result<Vec<u8>, PdfError> {
    doc.validate(company)?;
    let pages = layout::render_pages(doc, company);
    let title = format!("Facture {}", doc.number.trim());
    let subject = format!("{} — {}", title, doc.buyer.name.trim());
    document::assemble(
        pages,
        &document::Meta {
            title: &title,
            author: company.name.trim(),
            subject: &subject,
            created_on: doc.issued_on,
            number: &doc.number,
        },
    )
}

/// An invoice for a fictitious customer, with the company's own VAT rate, for
/// `facture render-sample` (and the benchmark). Fixed dates, so it is reproducible.
pub fn sample_document(company: &CompanySettings) -> InvoiceDocument {
    let issued_on = NaiveDate::from_ymd_opt(2025, 3, 14).unwrap_or_default();
    InvoiceDocument::single_line(
        "EXEMPLE-2025-0001".to_owned(),
        issued_on,
        Buyer {
            name: "Société Exemple SARL".to_owned(),
            email: "comptabilite@exemple.test".to_owned(),
            address: Some("8 avenue de l’Exemple\n69002 Lyon\nFrance".to_owned()),
            siren: Some("000000000".to_owned()),
            vat_number: Some("FR00000000000".to_owned()),
            is_business: true,
        },
        "Prestation d’exemple".to_owned(),
        "Ceci est une facture d’exemple, générée à partir d’un client fictif pour vérifier \
         la mise en page\u{a0}: accents (é, è, à, ç, œ), guillemets «\u{a0}français\u{a0}», \
         apostrophe typographique et montants en euros. La description d’une commande peut \
         être longue\u{a0}; elle est alors répartie sur plusieurs lignes, voire sur une \
         seconde page, sans jamais être tronquée."
            .to_owned(),
        Cents(150_000),
        company.vat_rate(),
        Some(PaymentInfo {
            paid_on: issued_on,
            method: "carte bancaire (Stripe)".to_owned(),
            reference: "pi_EXEMPLE0000000000000000".to_owned(),
        }),
    )
}
