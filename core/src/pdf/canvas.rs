//! Everything that depends on the font and on PDF operators: measuring text, breaking it
//! into lines, writing content streams, and the font resources. The layout above only
//! asks "how wide is this" and "draw this here", so swapping the standard fonts for an
//! embedded one (PDF/A-3) only touches this file (and `metrics` / `winansi`).

use lopdf::{dictionary, Dictionary, Document, Object, ObjectId};

use super::metrics;
use super::winansi;

/// The two faces the invoice uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Font {
    Regular,
    Bold,
}

impl Font {
    fn widths(self) -> &'static [u16; 256] {
        match self {
            Font::Regular => &metrics::HELVETICA,
            Font::Bold => &metrics::HELVETICA_BOLD,
        }
    }

    fn resource_name(self) -> &'static [u8] {
        match self {
            Font::Regular => b"F1",
            Font::Bold => b"F2",
        }
    }

    fn base_font(self) -> &'static str {
        match self {
            Font::Regular => "Helvetica",
            Font::Bold => "Helvetica-Bold",
        }
    }

    /// Width of `s` in thousandths of an em.
    fn units(self, s: &str) -> i64 {
        let w = self.widths();
        let units: u32 = match winansi::as_plain_ascii(s) {
            Some(ascii) => ascii.iter().map(|&b| u32::from(w[usize::from(b)])).sum(),
            None => winansi::bytes(s)
                .map(|b| u32::from(w[usize::from(b)]))
                .sum(),
        };
        i64::from(units)
    }

    /// Width of `s` at `size` points, in points.
    pub(crate) fn width(self, size: f32, s: &str) -> f32 {
        self.units(s) as f32 * size / 1000.0
    }

    /// Distance from the baseline to the top of capitals and ascenders, in points.
    pub(crate) fn ascent(self, size: f32) -> f32 {
        metrics::ASCENDER * size
    }

    /// The largest size not above `size` (and not below `min`) at which `s` fits in
    /// `max_width`. Used for single-line values (amounts, numbers) that must not collide
    /// with their neighbours.
    pub(crate) fn fit_size(self, size: f32, min: f32, s: &str, max_width: f32) -> f32 {
        let w = self.width(size, s);
        if w <= max_width || w <= 0.0 {
            size
        } else {
            // Rounded down to what the content stream writes (1/100 pt), so the width
            // used for alignment is the width drawn.
            ((size * max_width / w * 100.0).floor() / 100.0).max(min)
        }
    }

    /// Breaks `text` into lines no wider than `max_width`. Lines break at spaces; `\n`
    /// forces a break (an empty line stays an empty line); a word wider than the line is cut
    /// between characters. The lines are slices of `text`, trailing spaces removed. Every
    /// visible character of `text` is in exactly one line, so nothing is lost.
    pub(crate) fn wrap<'t>(self, size: f32, text: &'t str, max_width: f32, out: &mut Vec<&'t str>) {
        // Work in 1/1000 em so the comparison is exact integer arithmetic.
        let limit = ((max_width * 1000.0 / size).floor() as i64).max(1);
        let char_units = |s: &str| self.units(s);
        let space = i64::from(self.widths()[usize::from(b' ')]);
        for paragraph in text.split('\n') {
            let paragraph = paragraph.trim_end_matches(['\r', ' ', '\t']);
            if paragraph.is_empty() {
                out.push("");
                continue;
            }
            // Current line: byte range within `paragraph`, and its width.
            let mut line_start: Option<usize> = None;
            let mut line_end = 0usize;
            let mut line_width = 0i64;
            for (word_start, word) in words(paragraph) {
                let mut word_start = word_start;
                let mut word = word;
                let mut w = char_units(word);
                // Gap since the previous word on this line (one or more spaces).
                if let Some(start) = line_start {
                    let gap = char_units(&paragraph[line_end..word_start]).max(space);
                    if line_width + gap + w <= limit {
                        line_end = word_start + word.len();
                        line_width += gap + w;
                        continue;
                    }
                    out.push(&paragraph[start..line_end]);
                    line_start = None;
                }
                // The word starts a line; cut it while it is too wide on its own.
                while w > limit {
                    let cut = cut_point(word, limit, &char_units);
                    out.push(&word[..cut]);
                    word_start += cut;
                    word = &word[cut..];
                    w = char_units(word);
                }
                if word.is_empty() {
                    continue;
                }
                line_start = Some(word_start);
                line_end = word_start + word.len();
                line_width = w;
            }
            if let Some(start) = line_start {
                out.push(&paragraph[start..line_end]);
            }
        }
    }
}

/// Words of a line, split at ASCII spaces and tabs, with their byte offsets.
fn words(s: &str) -> impl Iterator<Item = (usize, &str)> {
    s.split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - s.as_ptr() as usize, w))
}

/// The longest prefix of `word` (at least one character, never splitting a combining
/// sequence) whose width is within `limit`.
fn cut_point(word: &str, limit: i64, units: &dyn Fn(&str) -> i64) -> usize {
    let mut best = 0;
    let mut width = 0;
    let mut cluster_start = 0;
    let mut iter = word.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let end = i + c.len_utf8();
        if iter
            .peek()
            .is_some_and(|&(_, next)| winansi::continues_previous(next))
        {
            continue;
        }
        width += units(&word[cluster_start..end]);
        cluster_start = end;
        if best > 0 && width > limit {
            break;
        }
        best = end;
    }
    if best == 0 {
        word.len()
    } else {
        best
    }
}

/// A gray level, 0 = black, 1 = white.
pub(crate) type Gray = f32;

/// The pages' content streams being written.
pub(crate) struct Canvas {
    pages: Vec<Vec<u8>>,
    current: usize,
    in_text: bool,
    font: Option<(Font, f32)>,
    fill: Option<Gray>,
    stroke: Option<Gray>,
    line_width: Option<f32>,
}

impl Canvas {
    pub(crate) fn new() -> Self {
        Canvas {
            pages: vec![Vec::with_capacity(4096)],
            current: 0,
            in_text: false,
            font: None,
            fill: None,
            stroke: None,
            line_width: None,
        }
    }

    pub(crate) fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Starts a new page and draws on it from now on.
    pub(crate) fn new_page(&mut self) {
        self.close_page();
        self.pages.push(Vec::with_capacity(2048));
        self.current = self.pages.len() - 1;
    }

    /// Draws on page `index` (0-based) again, e.g. to add footers once the count is known.
    pub(crate) fn select_page(&mut self, index: usize) {
        self.close_page();
        self.current = index.min(self.pages.len() - 1);
    }

    fn close_page(&mut self) {
        self.end_text();
        // The next page (or a page drawn on again) starts from an unknown state.
        self.font = None;
        self.fill = None;
        self.stroke = None;
        self.line_width = None;
    }

    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.pages[self.current]
    }

    fn end_text(&mut self) {
        if self.in_text {
            self.pages[self.current].extend_from_slice(b"ET\n");
            self.in_text = false;
        }
    }

    fn set_fill(&mut self, gray: Gray) {
        if self.fill != Some(gray) {
            self.fill = Some(gray);
            let buf = self.buf();
            push_num(buf, gray);
            buf.extend_from_slice(b" g\n");
        }
    }

    /// Draws `s` with its baseline starting at (`x`, `y`).
    pub(crate) fn text(&mut self, font: Font, size: f32, gray: Gray, x: f32, y: f32, s: &str) {
        if s.is_empty() {
            return;
        }
        if !self.in_text {
            self.buf().extend_from_slice(b"BT\n");
            self.in_text = true;
        }
        self.set_fill(gray);
        if self.font != Some((font, size)) {
            self.font = Some((font, size));
            let buf = self.buf();
            buf.push(b'/');
            buf.extend_from_slice(font.resource_name());
            buf.push(b' ');
            push_num(buf, size);
            buf.extend_from_slice(b" Tf\n");
        }
        let buf = &mut self.pages[self.current];
        buf.extend_from_slice(b"1 0 0 1 ");
        push_num(buf, x);
        buf.push(b' ');
        push_num(buf, y);
        buf.extend_from_slice(b" Tm(");
        let mut push = |b: u8| {
            if matches!(b, b'(' | b')' | b'\\') {
                buf.push(b'\\');
            }
            buf.push(b);
        };
        match winansi::as_plain_ascii(s) {
            Some(ascii) => ascii.iter().for_each(|&b| push(b)),
            None => winansi::bytes(s).for_each(push),
        }
        buf.extend_from_slice(b")Tj\n");
    }

    /// Draws `s` so that it ends at `x_right`.
    pub(crate) fn text_right(
        &mut self,
        font: Font,
        size: f32,
        gray: Gray,
        x_right: f32,
        y: f32,
        s: &str,
    ) {
        let x = x_right - font.width(size, s);
        self.text(font, size, gray, x, y, s);
    }

    /// A horizontal rule.
    pub(crate) fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32, gray: Gray) {
        self.end_text();
        if self.stroke != Some(gray) {
            self.stroke = Some(gray);
            let buf = self.buf();
            push_num(buf, gray);
            buf.extend_from_slice(b" G\n");
        }
        if self.line_width != Some(width) {
            self.line_width = Some(width);
            let buf = self.buf();
            push_num(buf, width);
            buf.extend_from_slice(b" w\n");
        }
        let buf = self.buf();
        push_num(buf, x1);
        buf.push(b' ');
        push_num(buf, y);
        buf.extend_from_slice(b" m ");
        push_num(buf, x2);
        buf.push(b' ');
        push_num(buf, y);
        buf.extend_from_slice(b" l S\n");
    }

    /// A filled rectangle, (`x`, `y`) being its lower-left corner.
    pub(crate) fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, gray: Gray) {
        self.end_text();
        self.set_fill(gray);
        let buf = self.buf();
        for (i, v) in [x, y, w, h].into_iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            push_num(buf, v);
        }
        buf.extend_from_slice(b" re f\n");
    }

    /// The finished content streams, one per page.
    pub(crate) fn finish(mut self) -> Vec<Vec<u8>> {
        self.close_page();
        self.pages
    }
}

/// Writes `v` rounded to 1/100, without trailing zeros (`12`, `12.5`, `-0.25`).
fn push_num(buf: &mut Vec<u8>, v: f32) {
    let hundredths = (f64::from(v) * 100.0).round() as i64;
    if hundredths < 0 {
        buf.push(b'-');
    }
    let abs = hundredths.unsigned_abs();
    push_uint(buf, abs / 100);
    let frac = abs % 100;
    if frac != 0 {
        buf.push(b'.');
        buf.push(b'0' + (frac / 10) as u8);
        if !frac.is_multiple_of(10) {
            buf.push(b'0' + (frac % 10) as u8);
        }
    }
}

fn push_uint(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Adds the font dictionaries to `doc` and returns the `/Font` resource dictionary naming
/// them as the content streams do.
pub(crate) fn font_resources(doc: &mut Document) -> Dictionary {
    let mut fonts = Dictionary::new();
    for font in [Font::Regular, Font::Bold] {
        let id: ObjectId = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => font.base_font(),
            "Encoding" => "WinAnsiEncoding",
        });
        fonts.set(font.resource_name(), Object::Reference(id));
    }
    fonts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(font: Font, size: f32, text: &str, width: f32) -> Vec<&str> {
        let mut out = Vec::new();
        font.wrap(size, text, width, &mut out);
        out
    }

    #[test]
    fn widths_come_from_the_afm() {
        // "Facture" in Helvetica: F611 a556 c500 t278 u556 r333 e556 = 3390.
        assert!((Font::Regular.width(10.0, "Facture") - 33.9).abs() < 1e-4);
        // The euro sign and the no-break space have their own widths.
        assert!((Font::Bold.width(10.0, "1\u{a0}€") - (5.56 + 2.78 + 5.56)).abs() < 1e-4);
        // An emoji is measured as the '?' drawn in its place.
        assert_eq!(
            Font::Regular.width(10.0, "😀"),
            Font::Regular.width(10.0, "?")
        );
    }

    #[test]
    fn wrapping_keeps_every_word_and_respects_the_width() {
        let text = "Relecture complète d’un mémoire de quatre-vingts pages, avec les corrections \
                    orthographiques, grammaticales et typographiques.";
        let lines = wrap(Font::Regular, 10.0, text, 120.0);
        assert!(lines.len() > 3);
        for line in &lines {
            assert!(Font::Regular.width(10.0, line) <= 120.0, "{line}");
        }
        let rejoined: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
        let original: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(rejoined, original);
    }

    #[test]
    fn hard_breaks_and_long_words() {
        let lines = wrap(Font::Regular, 10.0, "un\n\ndeux", 200.0);
        assert_eq!(lines, ["un", "", "deux"]);
        let long = "x".repeat(100);
        let lines = wrap(Font::Regular, 10.0, &long, 50.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), long);
        for line in &lines {
            assert!(Font::Regular.width(10.0, line) <= 50.0);
        }
        // A column narrower than one character still makes progress.
        let lines = wrap(Font::Regular, 10.0, "WW", 1.0);
        assert_eq!(lines, ["W", "W"]);
    }

    #[test]
    fn numbers_are_compact() {
        let mut buf = Vec::new();
        for v in [0.0f32, 12.0, 12.5, 841.89, -0.25, 0.004] {
            push_num(&mut buf, v);
            buf.push(b' ');
        }
        assert_eq!(buf, b"0 12 12.5 841.89 -0.25 0 ");
    }

    #[test]
    fn text_is_escaped_and_encoded() {
        let mut c = Canvas::new();
        c.text(Font::Regular, 9.0, 0.0, 10.0, 20.0, "a(b)\\ é€");
        let pages = c.finish();
        let s = &pages[0];
        let needle = b"(a\\(b\\)\\\\ \xE9\x80)Tj";
        assert!(
            s.windows(needle.len()).any(|w| w == needle),
            "{}",
            String::from_utf8_lossy(s)
        );
        assert!(s.ends_with(b"ET\n"));
    }
}
