//! Money is integer cents. Never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in euro cents.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

/// A rate in basis points: 2000 = 20 %, 550 = 5.5 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BasisPoints(pub u32);

/// A tax-inclusive amount split into its parts; `ht + tva == ttc` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSplit {
    pub ht: Cents,
    pub tva: Cents,
    pub ttc: Cents,
}

impl Cents {
    pub fn as_i64(self) -> i64 {
        self.0
    }

    /// Splits a tax-inclusive total: HT = TTC / (1 + rate) rounded half away from
    /// zero to the cent, TVA = TTC − HT, so the three add up exactly.
    pub fn split_ttc(self, rate: BasisPoints) -> TaxSplit {
        let ttc = i128::from(self.0);
        let denominator = 10_000 + i128::from(rate.0);
        let numerator = ttc * 10_000;
        let ht = div_round_half_away(numerator, denominator);
        // |ht| <= |ttc| so the narrowing cannot fail.
        let ht = i64::try_from(ht).unwrap_or(self.0);
        TaxSplit {
            ht: Cents(ht),
            tva: Cents(self.0 - ht),
            ttc: self,
        }
    }

    /// French formatting: `1 234,56 €`, with no-break spaces (U+00A0) as thousands
    /// separator and before the euro sign (WinAnsi, hence the PDF, has no U+202F).
    pub fn format_fr(self) -> String {
        let negative = self.0 < 0;
        let abs = self.0.unsigned_abs();
        let (euros, cents) = (abs / 100, abs % 100);
        let digits = euros.to_string();
        let mut grouped = String::with_capacity(digits.len() + 8);
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push('\u{a0}');
            }
            grouped.push(ch);
        }
        format!(
            "{}{grouped},{cents:02}\u{a0}€",
            if negative { "-" } else { "" }
        )
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_fr())
    }
}

impl BasisPoints {
    /// `20 %`, `5,5 %`.
    pub fn format_fr(self) -> String {
        let whole = self.0 / 100;
        let frac = self.0 % 100;
        if frac == 0 {
            format!("{whole}\u{a0}%")
        } else if frac.is_multiple_of(10) {
            format!("{whole},{}\u{a0}%", frac / 10)
        } else {
            format!("{whole},{frac:02}\u{a0}%")
        }
    }
}

fn div_round_half_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() {
        q + n.signum() * d.signum()
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_percent_of_120_euros() {
        let s = Cents(12_000).split_ttc(BasisPoints(2000));
        assert_eq!((s.ht, s.tva), (Cents(10_000), Cents(2_000)));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        // 1 cent at 20 %: exact HT is 0.8333 → 1.
        assert_eq!(Cents(1).split_ttc(BasisPoints(2000)).ht, Cents(1));
        // 3 cents at 20 %: 2.5 exactly → 3 (half away from zero).
        assert_eq!(Cents(3).split_ttc(BasisPoints(2000)).ht, Cents(3));
        assert_eq!(Cents(-3).split_ttc(BasisPoints(2000)).ht, Cents(-3));
    }

    #[test]
    fn zero_rate_means_no_vat() {
        let s = Cents(4_999).split_ttc(BasisPoints(0));
        assert_eq!((s.ht, s.tva), (Cents(4_999), Cents(0)));
    }

    /// Every amount from 1 cent to 100 000 € at the three French rates: HT is the
    /// cent nearest to the exact quotient and the parts add up.
    #[test]
    fn split_is_nearest_cent_and_adds_up_for_every_amount() {
        for rate in [2000u32, 1000, 550] {
            let d = 10_000 + i128::from(rate);
            for ttc in 1..=10_000_000i64 {
                let s = Cents(ttc).split_ttc(BasisPoints(rate));
                assert_eq!(s.ht.0 + s.tva.0, ttc);
                // |HT*d - TTC*10000| <= d/2, i.e. HT is within half a cent of exact.
                let err = (i128::from(s.ht.0) * d - i128::from(ttc) * 10_000).abs();
                assert!(2 * err <= d, "ttc={ttc} rate={rate} ht={}", s.ht.0);
            }
        }
    }

    #[test]
    fn french_formatting() {
        assert_eq!(Cents(123_456).format_fr(), "1\u{a0}234,56\u{a0}€");
        assert_eq!(Cents(5).format_fr(), "0,05\u{a0}€");
        assert_eq!(Cents(1_584_732).format_fr(), "15\u{a0}847,32\u{a0}€");
        assert_eq!(
            Cents(-100_000_000).format_fr(),
            "-1\u{a0}000\u{a0}000,00\u{a0}€"
        );
        assert_eq!(BasisPoints(550).format_fr(), "5,5\u{a0}%");
        assert_eq!(BasisPoints(2000).format_fr(), "20\u{a0}%");
    }
}
