//! Unicode → WinAnsiEncoding (the PDF's name for Windows code page 1252), the encoding of
//! the standard fonts the invoice uses.
//!
//! French needs nothing outside it: accented letters, « », œ, €, ’, the no-break space.
//! Near-equivalents are folded in (narrow no-break space → no-break space, non-breaking
//! hyphen → hyphen, a letter followed by a combining accent → the precomposed letter, as
//! macOS input often is). Invisible format characters (zero-width space, soft hyphen, BOM,
//! variation selectors) are dropped. Anything else (emoji, CJK, controls) becomes a visible
//! `?`: never a panic, never a silently missing character.

/// Printed in place of a character the font cannot show.
pub(crate) const REPLACEMENT: u8 = b'?';

/// The WinAnsi code of `c`, when the encoding has it.
pub(crate) fn encode_char(c: char) -> Option<u8> {
    let u = u32::from(c);
    match u {
        // 0xAD, the soft hyphen, would print as a hyphen: it is dropped instead (below).
        0x20..=0x7E | 0xA0..=0xAC | 0xAE..=0xFF => Some(u as u8),
        _ => Some(match c {
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8A,
            '‹' => 0x8B,
            'Œ' => 0x8C,
            'Ž' => 0x8E,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9A,
            '›' => 0x9B,
            'œ' => 0x9C,
            'ž' => 0x9E,
            'Ÿ' => 0x9F,
            _ => return None,
        }),
    }
}

/// What a character outside WinAnsi turns into.
enum Fallback {
    Byte(u8),
    Drop,
}

fn fallback(c: char) -> Fallback {
    match c {
        // Spaces of every width; line breaks reaching here are inside a single-line field.
        '\t'
        | '\n'
        | '\r'
        | '\u{2000}'..='\u{2006}'
        | '\u{2008}'..='\u{200A}'
        | '\u{205F}'
        | '\u{3000}' => Fallback::Byte(b' '),
        // No-break spaces (narrow, figure): the no-break space keeps them unbreakable.
        '\u{202F}' | '\u{2007}' => Fallback::Byte(0xA0),
        '\u{2010}' | '\u{2011}' | '\u{2212}' => Fallback::Byte(b'-'),
        '\u{2012}' | '\u{2015}' => Fallback::Byte(0x96),
        '\u{2032}' => Fallback::Byte(0x92),
        '\u{2033}' => Fallback::Byte(0x94),
        // Invisible format characters: soft hyphen, zero-width (non-)joiners and space, word
        // joiner, BOM, variation selectors.
        '\u{AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{FE00}'..='\u{FE0F}' => {
            Fallback::Drop
        }
        _ => Fallback::Byte(REPLACEMENT),
    }
}

/// The precomposed Latin-1 letter for `base` followed by the combining mark `mark`.
fn compose(base: char, mark: char) -> Option<char> {
    // Rows: grave, acute, circumflex, tilde, diaeresis, ring, cedilla.
    let row: &[(char, char)] = match mark {
        '\u{300}' => &[
            ('a', 'à'),
            ('e', 'è'),
            ('i', 'ì'),
            ('o', 'ò'),
            ('u', 'ù'),
            ('A', 'À'),
            ('E', 'È'),
            ('I', 'Ì'),
            ('O', 'Ò'),
            ('U', 'Ù'),
        ],
        '\u{301}' => &[
            ('a', 'á'),
            ('e', 'é'),
            ('i', 'í'),
            ('o', 'ó'),
            ('u', 'ú'),
            ('y', 'ý'),
            ('A', 'Á'),
            ('E', 'É'),
            ('I', 'Í'),
            ('O', 'Ó'),
            ('U', 'Ú'),
            ('Y', 'Ý'),
        ],
        '\u{302}' => &[
            ('a', 'â'),
            ('e', 'ê'),
            ('i', 'î'),
            ('o', 'ô'),
            ('u', 'û'),
            ('A', 'Â'),
            ('E', 'Ê'),
            ('I', 'Î'),
            ('O', 'Ô'),
            ('U', 'Û'),
        ],
        '\u{303}' => &[
            ('a', 'ã'),
            ('n', 'ñ'),
            ('o', 'õ'),
            ('A', 'Ã'),
            ('N', 'Ñ'),
            ('O', 'Õ'),
        ],
        '\u{308}' => &[
            ('a', 'ä'),
            ('e', 'ë'),
            ('i', 'ï'),
            ('o', 'ö'),
            ('u', 'ü'),
            ('y', 'ÿ'),
            ('A', 'Ä'),
            ('E', 'Ë'),
            ('I', 'Ï'),
            ('O', 'Ö'),
            ('U', 'Ü'),
            ('Y', 'Ÿ'),
        ],
        '\u{30A}' => &[('a', 'å'), ('A', 'Å')],
        '\u{327}' => &[('c', 'ç'), ('C', 'Ç')],
        _ => return None,
    };
    row.iter().find(|(b, _)| *b == base).map(|(_, c)| *c)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{300}'..='\u{36F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// The WinAnsi bytes `s` prints as. Measuring and drawing both go through this, so the
/// width used for alignment and wrapping is the width of what is drawn.
pub(crate) fn bytes(s: &str) -> Bytes<'_> {
    Bytes {
        chars: s.chars().peekable(),
    }
}

/// `s` itself when it is printable ASCII, which is its own WinAnsi encoding (the common
/// case, handled without decoding characters one by one).
pub(crate) fn as_plain_ascii(s: &str) -> Option<&[u8]> {
    let b = s.as_bytes();
    b.iter().all(|&c| (0x20..0x7F).contains(&c)).then_some(b)
}

pub(crate) struct Bytes<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Iterator for Bytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        loop {
            let c = self.chars.next()?;
            if c.is_ascii() && c >= ' ' && c != '\u{7F}' {
                // Fast path, and ASCII letters may carry a combining accent.
                if let Some(&mark) = self.chars.peek() {
                    if mark >= '\u{300}' {
                        if let Some(composed) = compose(c, mark) {
                            self.chars.next();
                            return encode_char(composed);
                        }
                    }
                }
                return Some(c as u8);
            }
            if let Some(b) = encode_char(c) {
                return Some(b);
            }
            if is_combining_mark(c) {
                // A mark with nothing to compose with: show that something is missing.
                return Some(REPLACEMENT);
            }
            match fallback(c) {
                Fallback::Byte(b) => return Some(b),
                Fallback::Drop => continue,
            }
        }
    }
}

/// Whether `c` starts a combining sequence's tail (a line must not be broken before it).
pub(crate) fn continues_previous(c: char) -> bool {
    is_combining_mark(c) || matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{200D}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> Vec<u8> {
        bytes(s).collect()
    }

    #[test]
    fn french_text_is_all_in_winansi() {
        assert_eq!(enc("é"), [0xE9]);
        assert_eq!(enc("€"), [0x80]);
        assert_eq!(enc("’"), [0x92]);
        assert_eq!(enc("\u{a0}"), [0xA0]);
        assert_eq!(enc("Œuvre « cœur »"), b"\x8Cuvre \xAB c\x9Cur \xBB");
        assert_eq!(enc("Ç à ù ÿ Ÿ"), b"\xC7 \xE0 \xF9 \xFF \x9F");
    }

    #[test]
    fn decomposed_accents_are_composed() {
        assert_eq!(enc("e\u{301}te\u{301}"), enc("été"));
        assert_eq!(enc("C\u{327}a"), enc("Ça"));
        // A mark that cannot compose is replaced visibly, not dropped.
        assert_eq!(enc("q\u{301}"), b"q?");
    }

    #[test]
    fn unknown_characters_are_replaced_visibly() {
        assert_eq!(enc("a😀b"), b"a?b");
        assert_eq!(enc("東京"), b"??");
        assert_eq!(enc("\u{1}"), b"?");
        // Invisible format characters vanish; near-equivalents are folded.
        assert_eq!(enc("a\u{200B}b\u{AD}c\u{FE0F}"), b"abc");
        assert_eq!(enc("1\u{202F}000"), b"1\xA0000");
        assert_eq!(enc("a\u{2011}b"), b"a-b");
    }
}
