//! Mail templates: minijinja, embedded in the binary, overridable file by file.
//!
//! Every message kind has three templates under `<kind>/`: `subject.txt.j2`,
//! `body.txt.j2` and `body.html.j2` (HTML bodies extend `_layout.html.j2`). Names ending
//! in `.html.j2` are HTML-escaped automatically; the subject and text bodies are not.
//! Undefined variables are errors (strict mode), and [`Templates::new`] renders every
//! template once with sample data, so a broken override stops facture at start-up rather
//! than at the first payment.
//!
//! When `mail.templates_dir` is set, `<templates_dir>/<name>` replaces the embedded
//! template of the same name (e.g. `payment_confirmation/body.html.j2`).

use std::path::Path;
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Weekday};
use minijinja::{context, AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use super::MailError;
use crate::config::{AppSettings, MailSettings};
use crate::money::Cents;

/// The embedded templates: (name, source).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "_layout.html.j2",
        include_str!("../../templates/mail/_layout.html.j2"),
    ),
    (
        "payment_confirmation/subject.txt.j2",
        include_str!("../../templates/mail/payment_confirmation/subject.txt.j2"),
    ),
    (
        "payment_confirmation/body.txt.j2",
        include_str!("../../templates/mail/payment_confirmation/body.txt.j2"),
    ),
    (
        "payment_confirmation/body.html.j2",
        include_str!("../../templates/mail/payment_confirmation/body.html.j2"),
    ),
    (
        "admin_payment/subject.txt.j2",
        include_str!("../../templates/mail/admin_payment/subject.txt.j2"),
    ),
    (
        "admin_payment/body.txt.j2",
        include_str!("../../templates/mail/admin_payment/body.txt.j2"),
    ),
    (
        "admin_payment/body.html.j2",
        include_str!("../../templates/mail/admin_payment/body.html.j2"),
    ),
    (
        "account_activation/subject.txt.j2",
        include_str!("../../templates/mail/account_activation/subject.txt.j2"),
    ),
    (
        "account_activation/body.txt.j2",
        include_str!("../../templates/mail/account_activation/body.txt.j2"),
    ),
    (
        "account_activation/body.html.j2",
        include_str!("../../templates/mail/account_activation/body.html.j2"),
    ),
    (
        "invoice_resent/subject.txt.j2",
        include_str!("../../templates/mail/invoice_resent/subject.txt.j2"),
    ),
    (
        "invoice_resent/body.txt.j2",
        include_str!("../../templates/mail/invoice_resent/body.txt.j2"),
    ),
    (
        "invoice_resent/body.html.j2",
        include_str!("../../templates/mail/invoice_resent/body.html.j2"),
    ),
    (
        "admin_alert/subject.txt.j2",
        include_str!("../../templates/mail/admin_alert/subject.txt.j2"),
    ),
    (
        "admin_alert/body.txt.j2",
        include_str!("../../templates/mail/admin_alert/body.txt.j2"),
    ),
    (
        "admin_alert/body.html.j2",
        include_str!("../../templates/mail/admin_alert/body.html.j2"),
    ),
];

/// Every message kind, as stored in `email_deliveries.kind` and used as template folder.
pub const KINDS: [&str; 5] = [
    "payment_confirmation",
    "admin_payment",
    "account_activation",
    "invoice_resent",
    "admin_alert",
];

/// One label/value line of an [`MailContent::AdminAlert`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDetail {
    pub label: String,
    pub value: String,
}

impl AlertDetail {
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Self {
        AlertDetail {
            label: label.into(),
            value: value.into(),
        }
    }
}

/// What a message says. Serializable, so a caller can persist it and rebuild the same
/// message later (see `Mailer::retry_delivery`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailContent {
    /// To the customer after payment; the invoice PDF is attached.
    PaymentConfirmation {
        first_name: String,
        invoice_number: String,
        amount: Cents,
        order_title: String,
        /// The order was a guest checkout and an account was created for it.
        new_account: bool,
    },
    /// To the admin after payment.
    AdminPayment {
        customer_name: String,
        customer_email: String,
        amount: Cents,
        order_title: String,
        commande_id: String,
        /// `None` while the invoice is not issued yet (the link then goes to the order).
        invoice_id: Option<String>,
        invoice_number: Option<String>,
        /// Guest checkout (true) or signed-in customer (false).
        guest: bool,
    },
    /// To a guest whose account was created at checkout.
    AccountActivation {
        first_name: String,
        email: String,
        token: String,
        /// UTC; shown in Paris time.
        expires_at: NaiveDateTime,
    },
    /// An invoice re-sent by an admin; the PDF is attached.
    InvoiceResent {
        first_name: String,
        invoice_number: String,
        amount: Cents,
        issued_on: NaiveDate,
    },
    /// A short alert to the admin (payment failed, a mail could not be delivered...).
    AdminAlert {
        title: String,
        message: String,
        details: Vec<AlertDetail>,
        /// Path under `app.public_url` for the link, e.g. `/admin/commandes/<id>`.
        admin_path: Option<String>,
    },
}

impl MailContent {
    /// `payment_confirmation`, `admin_payment`, `account_activation`, `invoice_resent`,
    /// `admin_alert`: the template folder and `email_deliveries.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            MailContent::PaymentConfirmation { .. } => KINDS[0],
            MailContent::AdminPayment { .. } => KINDS[1],
            MailContent::AccountActivation { .. } => KINDS[2],
            MailContent::InvoiceResent { .. } => KINDS[3],
            MailContent::AdminAlert { .. } => KINDS[4],
        }
    }

    /// One representative message of every kind (start-up check, tests, benches,
    /// previews). The customer's name contains markup on purpose.
    pub fn samples() -> Vec<MailContent> {
        let when = NaiveDate::from_ymd_opt(2026, 11, 24)
            .and_then(|d| d.and_hms_opt(14, 30, 0))
            .unwrap_or_default();
        vec![
            MailContent::PaymentConfirmation {
                first_name: "Émilie <b>".into(),
                invoice_number: "FAC-2026-000001".into(),
                amount: Cents(123_456),
                order_title: "Relecture-correction du manuscrit (320 pages)".into(),
                new_account: true,
            },
            MailContent::AdminPayment {
                customer_name: "Émilie Durand".into(),
                customer_email: "emilie@example.fr".into(),
                amount: Cents(123_456),
                order_title: "Relecture-correction du manuscrit (320 pages)".into(),
                commande_id: "c0ffee00-0000-4000-8000-000000000001".into(),
                invoice_id: Some("1nv01ce0-0000-4000-8000-000000000001".into()),
                invoice_number: Some("FAC-2026-000001".into()),
                guest: true,
            },
            MailContent::AccountActivation {
                first_name: "Émilie".into(),
                email: "emilie@example.fr".into(),
                token: "3f9a0c1d2e".into(),
                expires_at: when + Duration::hours(72),
            },
            MailContent::InvoiceResent {
                first_name: "Émilie".into(),
                invoice_number: "FAC-2026-000001".into(),
                amount: Cents(123_456),
                issued_on: when.date(),
            },
            MailContent::AdminAlert {
                title: "Paiement échoué".into(),
                message: "Le paiement de la commande a été refusé par la banque.".into(),
                details: vec![
                    AlertDetail::new("Client", "emilie@example.fr"),
                    AlertDetail::new("Raison", "card_declined"),
                ],
                admin_path: Some("/admin/commandes/c0ffee00".into()),
            },
        ]
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// One line, trimmed.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The compiled templates. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    public_url: Arc<str>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// Compiles the embedded templates (or their overrides from `mail.templates_dir`) and
    /// renders each once with [`MailContent::samples`].
    pub fn new(mail: &MailSettings, app: &AppSettings) -> Result<Templates, MailError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            // Strict mode: printing an undefined value is an error (the default formatter
            // checks this itself; a custom one must).
            if value.is_undefined() {
                return Err(minijinja::Error::from(ErrorKind::UndefinedError));
            }
            if state.auto_escape() == AutoEscape::Html && !value.is_safe() {
                // Like minijinja's HTML escaping, but `/` stays as is so links read
                // normally in the HTML source.
                out.write_str(&escape_html(&value.to_string()))
                    .map_err(minijinja::Error::from)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        let dir = mail.templates_dir.trim();
        let dir = (!dir.is_empty()).then(|| Path::new(dir));
        for (name, source) in EMBEDDED {
            let source = match dir.map(|d| d.join(name)) {
                Some(path) if path.is_file() => std::fs::read_to_string(&path).map_err(|e| {
                    MailError::Config(format!("mail.templates_dir: {}: {e}", path.display()))
                })?,
                _ => (*source).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| template_error(name, &e))?;
        }
        let templates = Templates {
            env: Arc::new(env),
            public_url: app.public_url.trim_end_matches('/').into(),
        };
        for sample in MailContent::samples() {
            templates.render(&sample)?;
        }
        Ok(templates)
    }

    /// `app.public_url` without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// `{public_url}/factures`: the customer's billing page.
    pub fn billing_url(&self) -> String {
        format!("{}/factures", self.public_url)
    }

    /// `{public_url}/activation?token=...`.
    pub fn activation_url(&self, token: &str) -> String {
        format!(
            "{}/activation?token={}",
            self.public_url,
            encode_query(token)
        )
    }

    /// `{public_url}/admin/factures/{id}`.
    pub fn admin_invoice_url(&self, invoice_id: &str) -> String {
        format!(
            "{}/admin/factures/{}",
            self.public_url,
            encode_query(invoice_id)
        )
    }

    /// `{public_url}/admin/commandes/{id}`.
    pub fn admin_order_url(&self, commande_id: &str) -> String {
        format!(
            "{}/admin/commandes/{}",
            self.public_url,
            encode_query(commande_id)
        )
    }

    /// Renders the subject and both bodies of `content`.
    pub fn render(&self, content: &MailContent) -> Result<RenderedMail, MailError> {
        self.render_kind(content.kind(), self.context(content))
    }

    /// Renders the three templates of `kind` with an arbitrary context (for previews and
    /// tests; strict: a variable the templates use but `ctx` lacks is an error).
    pub fn render_kind<S: Serialize>(&self, kind: &str, ctx: S) -> Result<RenderedMail, MailError> {
        let ctx = Value::from_serialize(&ctx);
        let subject = self.render_one(&format!("{kind}/subject.txt.j2"), &ctx)?;
        let text = self.render_one(&format!("{kind}/body.txt.j2"), &ctx)?;
        let html = self.render_one(&format!("{kind}/body.html.j2"), &ctx)?;
        Ok(RenderedMail {
            // One line; no-break spaces (amounts) are kept.
            subject: subject
                .split(|c: char| c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            text,
            html,
        })
    }

    fn render_one(&self, name: &str, ctx: &Value) -> Result<String, MailError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| template_error(name, &e))
    }

    /// The variables the templates of `content.kind()` see: the content's fields with
    /// amounts and dates formatted in French, and the absolute links.
    pub fn context(&self, content: &MailContent) -> Value {
        let public_url = &*self.public_url;
        match content {
            MailContent::PaymentConfirmation {
                first_name,
                invoice_number,
                amount,
                order_title,
                new_account,
            } => context! {
                public_url,
                first_name,
                invoice_number,
                amount => amount.format_fr(),
                order_title,
                new_account,
                attachment_name => format!("{invoice_number}.pdf"),
                billing_url => self.billing_url(),
            },
            MailContent::AdminPayment {
                customer_name,
                customer_email,
                amount,
                order_title,
                commande_id,
                invoice_id,
                invoice_number,
                guest,
            } => context! {
                public_url,
                customer_name,
                customer_email,
                amount => amount.format_fr(),
                order_title,
                commande_id,
                invoice_number,
                guest,
                admin_url => match invoice_id {
                    Some(id) => self.admin_invoice_url(id),
                    None => self.admin_order_url(commande_id),
                },
            },
            MailContent::AccountActivation {
                first_name,
                email,
                token,
                expires_at,
            } => context! {
                public_url,
                first_name,
                email,
                activation_url => self.activation_url(token),
                expires => datetime_fr(*expires_at),
            },
            MailContent::InvoiceResent {
                first_name,
                invoice_number,
                amount,
                issued_on,
            } => context! {
                public_url,
                first_name,
                invoice_number,
                amount => amount.format_fr(),
                issued_on => date_fr(*issued_on),
                attachment_name => format!("{invoice_number}.pdf"),
                billing_url => self.billing_url(),
            },
            MailContent::AdminAlert {
                title,
                message,
                details,
                admin_path,
            } => context! {
                public_url,
                title,
                message,
                details,
                admin_url => admin_path.as_ref().map(|p| {
                    format!("{}/{}", self.public_url, p.trim_start_matches('/'))
                }),
            },
        }
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> MailError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    MailError::Template {
        name: name.to_owned(),
        message,
    }
}

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// `1er décembre 2026`, `24 novembre 2026`.
pub fn date_fr(date: NaiveDate) -> String {
    let month = MONTHS[date.month0() as usize];
    match date.day() {
        1 => format!("1er {month} {}", date.year()),
        d => format!("{d} {month} {}", date.year()),
    }
}

/// A UTC instant in Paris time: `27 novembre 2026 à 15 h 30`.
pub fn datetime_fr(utc: NaiveDateTime) -> String {
    let local = utc_to_paris(utc);
    format!(
        "{} à {} h {:02}",
        date_fr(local.date()),
        local.hour(),
        local.minute()
    )
}

/// Paris local time: UTC+1, or UTC+2 from the last Sunday of March to the last Sunday
/// of October (both at 01:00 UTC), the EU rule since 1996.
pub fn utc_to_paris(utc: NaiveDateTime) -> NaiveDateTime {
    let year = utc.year();
    let switch = |month: u32| {
        last_sunday(year, month)
            .and_hms_opt(1, 0, 0)
            .unwrap_or_default()
    };
    let summer = utc >= switch(3) && utc < switch(10);
    utc + Duration::hours(if summer { 2 } else { 1 })
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    // March and October both have 31 days.
    let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or_default();
    let back = match last.weekday() {
        Weekday::Sun => 0,
        other => other.num_days_from_sunday(),
    };
    last - Duration::days(i64::from(back))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_dates() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(date_fr(d), "1er décembre 2026");
        let d = NaiveDate::from_ymd_opt(2026, 8, 15).unwrap();
        assert_eq!(date_fr(d), "15 août 2026");
    }

    #[test]
    fn paris_time_follows_summer_time() {
        let at = |y, m, d, h, min| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(h, min, 0)
                .unwrap()
        };
        // Winter: UTC+1.
        assert_eq!(
            datetime_fr(at(2026, 11, 27, 14, 30)),
            "27 novembre 2026 à 15 h 30"
        );
        // Summer: UTC+2.
        assert_eq!(
            datetime_fr(at(2026, 7, 14, 8, 5)),
            "14 juillet 2026 à 10 h 05"
        );
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(utc_to_paris(at(2026, 3, 29, 0, 59)), at(2026, 3, 29, 1, 59));
        assert_eq!(utc_to_paris(at(2026, 3, 29, 1, 0)), at(2026, 3, 29, 3, 0));
        assert_eq!(
            utc_to_paris(at(2026, 10, 25, 0, 59)),
            at(2026, 10, 25, 2, 59)
        );
        assert_eq!(utc_to_paris(at(2026, 10, 25, 1, 0)), at(2026, 10, 25, 2, 0));
        // Day change.
        assert_eq!(
            datetime_fr(at(2026, 12, 31, 23, 30)),
            "1er janvier 2027 à 0 h 30"
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode_query("abc-123_~."), "abc-123_~.");
    }
}
