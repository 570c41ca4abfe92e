//! Where each part of the invoice goes on the page, and when to start a new page. Knows
//! nothing of PDF operators or font files: it asks [`Font`] for widths and line breaks and
//! tells the [`Canvas`] what to draw where.

use chrono::{Datelike, NaiveDate};

use super::canvas::{Canvas, Font, Gray};
use super::InvoiceDocument;
use crate::config::{CompanySettings, VatRegime};

/// A4 portrait, in points.
pub(crate) const PAGE_WIDTH: f32 = 595.28;
pub(crate) const PAGE_HEIGHT: f32 = 841.89;

const LEFT: f32 = 56.0;
const RIGHT: f32 = PAGE_WIDTH - 56.0;
const CONTENT_WIDTH: f32 = RIGHT - LEFT;
/// The top of the content on the first page.
const TOP: f32 = PAGE_HEIGHT - 50.0;
/// The top of the content on the following pages, below the running head.
const CONTINUED_TOP: f32 = TOP - 26.0;
/// No content baseline goes below this; the footer lives underneath.
const BOTTOM: f32 = 78.0;
const FOOTER_BASELINE: f32 = 40.0;
/// Where the right-hand column (title, buyer, totals) starts.
const RIGHT_COLUMN: f32 = 330.0;
const LEFT_COLUMN_WIDTH: f32 = 250.0;
const RIGHT_COLUMN_WIDTH: f32 = RIGHT - RIGHT_COLUMN;

/// Table rows up to this many lines are never split across pages.
const KEPT_ROW_LINES: usize = 6;

const BLACK: Gray = 0.0;
const DARK: Gray = 0.25;
const MUTED: Gray = 0.45;
const RULE: Gray = 0.75;
const SHADE: Gray = 0.93;

#[derive(Debug, Clone, Copy)]
struct Style {
    font: Font,
    size: f32,
    /// Baseline-to-baseline distance.
    lead: f32,
    gray: Gray,
}

const TITLE: Style = Style {
    font: Font::Bold,
    size: 22.0,
    lead: 24.0,
    gray: BLACK,
};
const STRONG: Style = Style {
    font: Font::Bold,
    size: 10.0,
    lead: 14.0,
    gray: BLACK,
};
const BODY: Style = Style {
    font: Font::Regular,
    size: 9.0,
    lead: 12.5,
    gray: BLACK,
};
const DESCRIPTION: Style = Style {
    font: Font::Regular,
    size: 10.0,
    lead: 14.0,
    gray: BLACK,
};
/// The description's measure: about 65 characters a line, comfortable to read (the full
/// content width would give lines of 100 and more).
const DESCRIPTION_WIDTH: f32 = 320.0;
const SMALL: Style = Style {
    font: Font::Regular,
    size: 8.0,
    lead: 11.0,
    gray: DARK,
};
const LABEL: Style = Style {
    font: Font::Bold,
    size: 7.5,
    lead: 12.0,
    gray: MUTED,
};
const TOTAL: Style = Style {
    font: Font::Bold,
    size: 10.5,
    lead: 17.0,
    gray: BLACK,
};
const ACQUITTED: Style = Style {
    font: Font::Bold,
    size: 11.0,
    lead: 18.0,
    gray: BLACK,
};

/// One printed line of a block: left text and an optional right-aligned value.
#[derive(Debug, Clone, Copy)]
struct Line<'t> {
    style: Style,
    lead: f32,
    text: &'t str,
    value: &'t str,
    value_size: f32,
    rule_above: bool,
}

/// Lines wrapped for a column of a given width, drawn later at a given x.
struct Block<'t> {
    width: f32,
    lines: Vec<Line<'t>>,
    scratch: Vec<&'t str>,
}

impl<'t> Block<'t> {
    fn new(width: f32) -> Self {
        Block {
            width,
            lines: Vec::with_capacity(16),
            scratch: Vec::with_capacity(8),
        }
    }

    /// `text`, wrapped to the block's width; nothing when it is blank.
    fn text(&mut self, style: Style, text: &'t str) {
        self.wrapped(style, text, self.width, "", 0.0, false);
    }

    fn wrapped(
        &mut self,
        style: Style,
        text: &'t str,
        width: f32,
        value: &'t str,
        value_size: f32,
        rule: bool,
    ) {
        let text = text.trim();
        if text.is_empty() && value.is_empty() {
            return;
        }
        self.scratch.clear();
        style.font.wrap(style.size, text, width, &mut self.scratch);
        if self.scratch.is_empty() {
            self.scratch.push("");
        }
        for (i, piece) in self.scratch.drain(..).enumerate() {
            self.lines.push(Line {
                style,
                lead: style.lead,
                text: piece,
                value: if i == 0 { value } else { "" },
                value_size,
                rule_above: rule && i == 0,
            });
        }
    }

    /// A label on the left and an amount right-aligned on the same baseline.
    fn pair(&mut self, style: Style, label: &'t str, value: &'t str, rule: bool) {
        let value_size = style
            .font
            .fit_size(style.size, 5.0, value, self.width * 0.6);
        let label_width = self.width - style.font.width(value_size, value) - 8.0;
        self.wrapped(style, label, label_width.max(1.0), value, value_size, rule);
    }

    fn gap(&mut self, h: f32) {
        self.lines.push(Line {
            style: BODY,
            lead: h,
            text: "",
            value: "",
            value_size: 0.0,
            rule_above: false,
        });
    }

    fn height(&self) -> f32 {
        self.lines.iter().map(|l| l.lead).sum()
    }
}

fn draw_line(canvas: &mut Canvas, x: f32, width: f32, y: f32, line: &Line<'_>) {
    let s = line.style;
    if line.rule_above {
        canvas.hline(x, x + width, y + s.font.ascent(s.size) + 4.0, 0.6, BLACK);
    }
    canvas.text(s.font, s.size, s.gray, x, y, line.text);
    if !line.value.is_empty() {
        canvas.text_right(s.font, line.value_size, s.gray, x + width, y, line.value);
    }
}

/// Content flowing down the pages.
struct Flow<'a> {
    canvas: Canvas,
    /// Baseline of the last line drawn (or the top of the free space).
    y: f32,
    running_head: &'a str,
}

impl Flow<'_> {
    fn break_page(&mut self) {
        self.canvas.new_page();
        let (text, size) = fit_one(Font::Regular, 8.0, &[self.running_head], CONTENT_WIDTH);
        self.canvas
            .text(Font::Regular, size, MUTED, LEFT, TOP - 8.0, text);
        self.canvas.hline(LEFT, RIGHT, TOP - 14.0, 0.4, RULE);
        self.y = CONTINUED_TOP;
    }

    /// Moves down one line of `lead`, on a new page when it would go past the bottom.
    fn next_baseline(&mut self, lead: f32) -> f32 {
        if self.y - lead < BOTTOM {
            self.break_page();
        }
        self.y -= lead;
        self.y
    }

    /// Starts a new page unless `h` more points fit on this one (a heading and its first
    /// lines, a row of columns). Something taller than a page just flows.
    fn keep(&mut self, h: f32) {
        if self.y - h < BOTTOM && CONTINUED_TOP - h >= BOTTOM {
            self.break_page();
        }
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }

    fn block(&mut self, x: f32, block: &Block<'_>) {
        for line in &block.lines {
            let y = self.next_baseline(line.lead);
            draw_line(&mut self.canvas, x, block.width, y, line);
        }
    }

    /// Two blocks side by side, starting on the same line; one after the other when they
    /// are too tall to fit together even on a fresh page.
    fn columns(&mut self, left: (f32, &Block<'_>), right: (f32, &Block<'_>)) {
        let h = left.1.height().max(right.1.height());
        self.keep(h);
        if self.y - h < BOTTOM {
            self.block(left.0, left.1);
            self.block(right.0, right.1);
            return;
        }
        let top = self.y;
        for (x, block) in [left, right] {
            let mut y = top;
            for line in &block.lines {
                y -= line.lead;
                draw_line(&mut self.canvas, x, block.width, y, line);
            }
        }
        self.y = top - h;
    }
}

/// The first of `candidates` that fits in `width` at no less than 5 pt, at the largest
/// size up to `size`; the last one shrunk as far as needed otherwise.
fn fit_one<'s>(font: Font, size: f32, candidates: &[&'s str], width: f32) -> (&'s str, f32) {
    for &c in candidates {
        if font.width(5.0, c) <= width {
            return (c, font.fit_size(size, 5.0, c, width));
        }
    }
    let last = candidates.last().copied().unwrap_or("");
    (last, font.fit_size(size, 0.5, last, width))
}

fn fr_date(d: NaiveDate) -> String {
    format!("{:02}/{:02}/{:04}", d.day(), d.month(), d.year())
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Joins the non-blank parts with ` · `.
fn joined(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push_str(" · ");
        }
        out.push_str(part);
    }
    out
}

/// A table column holding a right-aligned value.
struct Column {
    label: &'static str,
    right: f32,
    width: f32,
}

struct Table {
    designation_width: f32,
    columns: Vec<Column>,
}

impl Table {
    fn new(with_vat: bool) -> Self {
        let total = Column {
            label: "Total HT",
            right: RIGHT - 6.0,
            width: 72.0,
        };
        let columns = if with_vat {
            vec![
                Column {
                    label: "Qté",
                    right: 322.0,
                    width: 34.0,
                },
                Column {
                    label: "Prix unit. HT",
                    right: 404.0,
                    width: 74.0,
                },
                Column {
                    label: "TVA",
                    right: 450.0,
                    width: 38.0,
                },
                total,
            ]
        } else {
            vec![
                Column {
                    label: "Qté",
                    right: 372.0,
                    width: 34.0,
                },
                Column {
                    label: "Prix unit. HT",
                    right: 454.0,
                    width: 74.0,
                },
                total,
            ]
        };
        let first_left = columns[0].right - columns[0].width;
        Table {
            designation_width: first_left - 8.0 - (LEFT + 6.0),
            columns,
        }
    }

    const HEADER_HEIGHT: f32 = 18.0;

    fn header(&self, flow: &mut Flow<'_>) {
        let top = flow.y;
        flow.canvas.fill_rect(
            LEFT,
            top - Self::HEADER_HEIGHT,
            CONTENT_WIDTH,
            Self::HEADER_HEIGHT,
            SHADE,
        );
        let y = top - 12.0;
        let s = LABEL;
        flow.canvas
            .text(s.font, s.size, DARK, LEFT + 6.0, y, "Désignation");
        for c in &self.columns {
            let size = s.font.fit_size(s.size, 4.0, c.label, c.width);
            flow.canvas
                .text_right(s.font, size, DARK, c.right, y, c.label);
        }
        flow.y = top - Self::HEADER_HEIGHT;
    }

    /// Lines a row needs for `designation`, counting at most `KEPT_ROW_LINES`.
    fn row_lines(&self, designation: &str) -> usize {
        let mut pieces = Vec::new();
        BODY.font.wrap(
            BODY.size,
            designation.trim(),
            self.designation_width,
            &mut pieces,
        );
        pieces.len().clamp(1, KEPT_ROW_LINES)
    }

    /// One row: the designation wrapped in its column, the values on its first line. The
    /// header is repeated on each page the table continues on.
    fn row(&self, flow: &mut Flow<'_>, designation: &str, values: &[String]) {
        let s = BODY;
        let mut pieces = Vec::new();
        s.font.wrap(
            s.size,
            designation.trim(),
            self.designation_width,
            &mut pieces,
        );
        if pieces.is_empty() {
            pieces.push("");
        }
        // A row of a few lines is kept on one page; a longer one may be split.
        let height = 3.0 + pieces.len() as f32 * s.lead;
        if pieces.len() <= KEPT_ROW_LINES && flow.y - height < BOTTOM {
            flow.break_page();
            self.header(flow);
        }
        flow.gap(3.0);
        for (i, piece) in pieces.iter().enumerate() {
            if flow.y - s.lead < BOTTOM {
                flow.break_page();
                self.header(flow);
            }
            flow.y -= s.lead;
            let y = flow.y;
            flow.canvas
                .text(s.font, s.size, s.gray, LEFT + 6.0, y, piece);
            if i == 0 {
                for (c, v) in self.columns.iter().zip(values) {
                    let size = s.font.fit_size(s.size, 4.0, v, c.width);
                    flow.canvas.text_right(s.font, size, s.gray, c.right, y, v);
                }
            }
        }
        flow.gap(6.0);
        flow.canvas.hline(LEFT, RIGHT, flow.y, 0.4, RULE);
    }
}

/// Lays the invoice out and returns one content stream per page.
pub(crate) fn render_pages(doc: &InvoiceDocument, company: &CompanySettings) -> Vec<Vec<u8>> {
    let franchise = company.vat_regime == VatRegime::Franchise;
    let buyer = &doc.buyer;

    // Every string printed, built up front so the blocks can borrow them.
    let seller_form = match (company.legal_form.trim(), company.share_capital.trim()) {
        ("", _) => String::new(),
        (form, "") => form.to_owned(),
        (form, capital) => format!("{form} au capital de {capital}"),
    };
    let seller_ids = joined(&[
        &prefixed("SIREN ", &company.siren),
        &prefixed("SIRET ", &company.siret),
    ]);
    let seller_vat = prefixed("TVA intracommunautaire\u{a0}: ", &company.vat_number);
    let seller_contact = joined(&[&company.email, &company.phone]);
    let number = format!("N°\u{a0}{}", doc.number.trim());
    let issued = format!("Date d’émission\u{a0}: {}", fr_date(doc.issued_on));
    let service = format!("Date de la prestation\u{a0}: {}", fr_date(doc.service_date));
    let buyer_siren = non_empty(&buyer.siren).map(|s| format!("SIREN\u{a0}: {s}"));
    let buyer_vat = non_empty(&buyer.vat_number).map(|s| format!("N° TVA\u{a0}: {s}"));
    let total_ht = doc.totals.ht.format_fr();
    let total_tva = doc.totals.tva.format_fr();
    let total_ttc = doc.totals.ttc.format_fr();
    let vat_label = format!("TVA {}", doc.vat_rate.format_fr());
    let rate = doc.vat_rate.format_fr();
    let paid = doc.payment.as_ref().map(|p| {
        (
            format!("Payée le {} par {}", fr_date(p.paid_on), p.method.trim()),
            prefixed("Référence du paiement\u{a0}: ", &p.reference),
        )
    });
    let penalty = {
        let rate = company.late_penalty_rate.trim().trim_end_matches('.');
        if rate.is_empty() {
            String::new()
        } else {
            format!("Pénalités de retard\u{a0}: {rate}.")
        }
    };
    let running_head = joined(&[
        &company.name,
        &format!("Facture {} (suite)", doc.number.trim()),
    ]);

    let mut flow = Flow {
        canvas: Canvas::new(),
        y: TOP,
        running_head: &running_head,
    };

    // Seller on the left, the title and the buyer on the right.
    let mut seller = Block::new(LEFT_COLUMN_WIDTH);
    let wordmark_size = Font::Bold.fit_size(20.0, 12.0, company.name.trim(), LEFT_COLUMN_WIDTH);
    seller.text(
        Style {
            font: Font::Bold,
            size: wordmark_size,
            lead: TITLE.lead.max(wordmark_size * 1.2),
            gray: BLACK,
        },
        &company.name,
    );
    seller.gap(8.0);
    for text in [
        seller_form.as_str(),
        &company.address,
        &seller_ids,
        &company.rcs,
        &seller_vat,
        &seller_contact,
    ] {
        seller.text(SMALL, text);
    }

    let mut head = Block::new(RIGHT_COLUMN_WIDTH);
    head.text(TITLE, "FACTURE");
    head.text(STRONG, &number);
    head.text(BODY, &issued);
    head.text(BODY, &service);
    head.gap(14.0);
    head.text(LABEL, "FACTURÉ À");
    head.text(STRONG, &buyer.name);
    if let Some(address) = buyer.address.as_deref() {
        head.text(BODY, address);
    }
    head.text(BODY, &buyer.email);
    if let Some(s) = &buyer_siren {
        head.text(BODY, s);
    }
    if let Some(s) = &buyer_vat {
        head.text(BODY, s);
    }
    flow.columns((LEFT, &seller), (RIGHT_COLUMN, &head));

    // The order.
    flow.gap(20.0);
    let mut order = Block::new(CONTENT_WIDTH);
    order.text(LABEL, "OBJET");
    order.text(
        Style {
            lead: 15.0,
            size: 11.0,
            ..STRONG
        },
        &doc.order_title,
    );
    order.gap(2.0);
    order.width = DESCRIPTION_WIDTH;
    order.text(DESCRIPTION, &doc.order_description);
    flow.keep(order.lines.iter().take(4).map(|l| l.lead).sum());
    flow.block(LEFT, &order);

    // The lines.
    flow.gap(18.0);
    let table = Table::new(!franchise);
    let first_row = doc
        .lines
        .first()
        .map_or(1, |l| table.row_lines(&l.designation));
    flow.keep(Table::HEADER_HEIGHT + 3.0 + first_row as f32 * BODY.lead + 6.0);
    table.header(&mut flow);
    for line in &doc.lines {
        let mut values = vec![line.quantity.to_string(), line.unit_price_ht.format_fr()];
        if !franchise {
            values.push(rate.clone());
        }
        values.push(line.total_ht.format_fr());
        table.row(&mut flow, &line.designation, &values);
    }

    // Payment on the left, totals on the right.
    flow.gap(16.0);
    let mut totals = Block::new(RIGHT_COLUMN_WIDTH);
    totals.pair(BODY, "Total HT", &total_ht, false);
    if !franchise {
        totals.pair(BODY, &vat_label, &total_tva, false);
    }
    totals.gap(4.0);
    totals.pair(TOTAL, "Total TTC", &total_ttc, true);

    let mut payment = Block::new(LEFT_COLUMN_WIDTH);
    payment.text(LABEL, "RÈGLEMENT");
    match &paid {
        Some((when, reference)) => {
            payment.text(BODY, when);
            payment.text(BODY, reference);
            payment.gap(2.0);
            payment.text(ACQUITTED, "Acquittée");
        }
        None => payment.text(BODY, "En attente de paiement."),
    }
    flow.columns((LEFT, &payment), (RIGHT_COLUMN, &totals));

    // Legal mentions: the franchise mention or the professional recovery indemnity.
    flow.gap(22.0);
    let mut legal = Block::new(CONTENT_WIDTH);
    legal.text(LABEL, "MENTIONS LÉGALES");
    if franchise {
        legal.text(SMALL, "TVA non applicable, art. 293 B du CGI");
    }
    legal.text(SMALL, &penalty);
    if buyer.is_business {
        if !franchise {
            legal.text(
                SMALL,
                "Indemnité forfaitaire pour frais de recouvrement en cas de retard de paiement\u{a0}: \
                 40\u{a0}€ (art. L441-10 et D441-5 du Code de commerce).",
            );
        }
        legal.text(SMALL, "Pas d’escompte pour paiement anticipé.");
    }
    flow.keep(legal.lines.iter().take(3).map(|l| l.lead).sum());
    flow.block(LEFT, &legal);

    // Footers, now that the page count is known.
    let mut canvas = flow.canvas;
    let pages = canvas.page_count();
    let short = format!("Facture {}", doc.number.trim());
    let long = joined(&[&company.name, &short]);
    for page in 0..pages {
        canvas.select_page(page);
        canvas.hline(LEFT, RIGHT, FOOTER_BASELINE + 12.0, 0.4, RULE);
        let label = format!("Page {}/{}", page + 1, pages);
        canvas.text_right(Font::Regular, 8.0, MUTED, RIGHT, FOOTER_BASELINE, &label);
        let room = CONTENT_WIDTH - Font::Regular.width(8.0, &label) - 16.0;
        let (text, size) = fit_one(Font::Regular, 8.0, &[&long, &short], room);
        canvas.text(Font::Regular, size, MUTED, LEFT, FOOTER_BASELINE, text);
    }
    canvas.finish()
}

/// `prefix` + `value`, or nothing when `value` is blank.
fn prefixed(prefix: &str, value: &str) -> String {
    let value = value.trim();
    if value.is_empty() {
        String::new()
    } else {
        format!("{prefix}{value}")
    }
}
