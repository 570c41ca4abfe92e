//! Advance widths of the two standard fonts the invoice uses, indexed by WinAnsi byte, in
//! thousandths of an em (the `WX` values of Adobe's published core-14 AFM files
//! `Helvetica.afm` and `Helvetica-Bold.afm`, version 002.000, rearranged by WinAnsiEncoding
//! code). Codes that WinAnsiEncoding leaves undefined (0x00–0x1F, 0x7F, 0x81, 0x8D, 0x8F,
//! 0x90, 0x9D) are 0: the encoder never emits them.
//!
//! No kerning is applied: the content stream shows each string with `Tj`, which a reader
//! lays out with these advances only, so measuring with them gives the printed width.

/// Font-wide vertical metrics shared by both weights (AFM `Ascender` / `Descender`).
pub(crate) const ASCENDER: f32 = 0.718;

#[rustfmt::skip]
pub(crate) static HELVETICA: [u16; 256] = [
    // 0x00–0x1F: control codes, undefined.
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    // 0x20  space exclam quotedbl numbersign dollar percent ampersand quotesingle
    //       parenleft parenright asterisk plus comma hyphen period slash
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    // 0x30  zero..nine colon semicolon less equal greater question
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    // 0x40  at A..O
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    // 0x50  P..Z bracketleft backslash bracketright asciicircum underscore
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    // 0x60  grave a..o
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    // 0x70  p..z braceleft bar braceright asciitilde (0x7F undefined)
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0,
    // 0x80  Euro - quotesinglbase florin quotedblbase ellipsis dagger daggerdbl
    //       circumflex perthousand Scaron guilsinglleft OE - Zcaron -
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    // 0x90  - quoteleft quoteright quotedblleft quotedblright bullet endash emdash
    //       tilde trademark scaron guilsinglright oe - zcaron Ydieresis
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667,
    // 0xA0  space(nbsp) exclamdown cent sterling currency yen brokenbar section
    //       dieresis copyright ordfeminine guillemotleft logicalnot hyphen registered macron
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    // 0xB0  degree plusminus twosuperior threesuperior acute mu paragraph periodcentered
    //       cedilla onesuperior ordmasculine guillemotright onequarter onehalf threequarters questiondown
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    // 0xC0  Agrave Aacute Acircumflex Atilde Adieresis Aring AE Ccedilla
    //       Egrave Eacute Ecircumflex Edieresis Igrave Iacute Icircumflex Idieresis
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    // 0xD0  Eth Ntilde Ograve Oacute Ocircumflex Otilde Odieresis multiply
    //       Oslash Ugrave Uacute Ucircumflex Udieresis Yacute Thorn germandbls
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    // 0xE0  agrave aacute acircumflex atilde adieresis aring ae ccedilla
    //       egrave eacute ecircumflex edieresis igrave iacute icircumflex idieresis
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    // 0xF0  eth ntilde ograve oacute ocircumflex otilde odieresis divide
    //       oslash ugrave uacute ucircumflex udieresis yacute thorn ydieresis
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

#[rustfmt::skip]
pub(crate) static HELVETICA_BOLD: [u16; 256] = [
    // 0x00–0x1F: control codes, undefined.
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    // 0x20
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    // 0x30
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    // 0x40
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    // 0x50
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    // 0x60
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    // 0x70
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0,
    // 0x80
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    // 0x90
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667,
    // 0xA0
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    // 0xB0
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    // 0xC0
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    // 0xD0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    // 0xE0
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    // 0xF0
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_checks_against_the_afm() {
        // Regular: A, a, i, W, Euro, quoteright, eacute, nbsp.
        assert_eq!(HELVETICA[b'A' as usize], 667);
        assert_eq!(HELVETICA[b'a' as usize], 556);
        assert_eq!(HELVETICA[b'i' as usize], 222);
        assert_eq!(HELVETICA[b'W' as usize], 944);
        assert_eq!(HELVETICA[0x80], 556);
        assert_eq!(HELVETICA[0x92], 222);
        assert_eq!(HELVETICA[0xE9], 556);
        assert_eq!(HELVETICA[0xA0], 278);
        // Bold differs where the AFM does.
        assert_eq!(HELVETICA_BOLD[b'A' as usize], 722);
        assert_eq!(HELVETICA_BOLD[b'b' as usize], 611);
        assert_eq!(HELVETICA_BOLD[0x92], 278);
        assert_eq!(HELVETICA_BOLD[0xE7], 556);
        // Every printable code has a width in both fonts.
        for code in (0x20..=0xFFusize).filter(|c| ![0x7F, 0x81, 0x8D, 0x8F, 0x90, 0x9D].contains(c))
        {
            assert!(
                HELVETICA[code] > 0 && HELVETICA_BOLD[code] > 0,
                "code {code:#x}"
            );
        }
    }
}
