//! Typed configuration: embedded `config/default.toml`, then an optional file, then
//! `FACTURE__SECTION__KEY` environment variables. Validated once at start-up so a wrong
//! value stops facture with one line naming the key.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer};

use crate::money::BasisPoints;

/// The defaults shipped in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {expected}")]
    Invalid { key: &'static str, expected: String },
    #[error("configuration key `{key}` is required in production ({hint})")]
    MissingSecret {
        key: &'static str,
        hint: &'static str,
    },
    #[error("could not store the generated development secret in {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &'static str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        expected: expected.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub env: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub app: AppSettings,
    pub auth: AuthSettings,
    pub stripe: StripeSettings,
    pub engine: EngineSettings,
    pub mail: MailSettings,
    pub invoice: InvoiceSettings,
    pub company: CompanySettings,
    #[serde(default)]
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub webhook_body_limit: usize,
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
    pub busy_timeout_ms: u64,
    /// SQLite group commit (`db::write_batch`): writes per batch at most, and the age after
    /// which a batch is committed by the write that ends it.
    pub write_batch_max: usize,
    pub write_batch_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppSettings {
    pub data_dir: PathBuf,
    pub public_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    #[serde(default)]
    pub jwt_secret: Option<String>,
    pub token_lifetime_secs: u64,
    pub activation_token_lifetime_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    #[serde(default, deserialize_with = "comma_list")]
    pub webhook_secrets: Vec<String>,
    pub webhook_tolerance_secs: u64,
    #[serde(default)]
    pub secret_key: Option<String>,
    pub api_base: String,
    #[serde(default, deserialize_with = "comma_list")]
    pub allowed_sources: Vec<String>,
    /// Accept an `sk_live_` key while `env = "development"` (refused otherwise).
    #[serde(default)]
    pub allow_live_in_development: bool,
    /// Where Stripe sends the customer after paying; empty:
    /// `{app.public_url}/paiement/succes?session_id={CHECKOUT_SESSION_ID}`.
    #[serde(default)]
    pub success_url: String,
    /// Where Stripe sends the customer who gives up; empty: `{app.public_url}/paiement/annule`.
    #[serde(default)]
    pub cancel_url: String,
    /// The `metadata.source` of the Checkout Sessions facture creates.
    #[serde(default = "default_checkout_source")]
    pub source: String,
    /// Lifetime of a Checkout Session, in minutes (Stripe accepts 30 to 1440).
    #[serde(default = "default_checkout_expiry_minutes")]
    pub checkout_expiry_minutes: u64,
    /// One Stripe API call gives up after this long (then it is retried, same idempotency key).
    #[serde(default = "default_stripe_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Attempts per Stripe API call on network errors, timeouts, 409, 429 and 5xx.
    #[serde(default = "default_stripe_max_attempts")]
    pub max_attempts: u32,
    /// The price list offered to guests (`GET /payments/services`).
    #[serde(default)]
    pub services: Vec<ServiceOffer>,
}

/// One entry of the price list (`[[stripe.services]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceOffer {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Tax-inclusive price, in euro cents.
    pub amount_cents: i64,
}

fn default_checkout_source() -> String {
    "facture".into()
}

fn default_checkout_expiry_minutes() -> u64 {
    60
}

fn default_stripe_timeout_ms() -> u64 {
    10_000
}

fn default_stripe_max_attempts() -> u32 {
    2
}

/// Stripe's bounds on a Checkout Session amount, in cents (EUR: 0.50 € to 999 999.99 €).
pub const STRIPE_MIN_AMOUNT_CENTS: i64 = 50;
pub const STRIPE_MAX_AMOUNT_CENTS: i64 = 99_999_999;

impl StripeSettings {
    /// The configured service with this id.
    pub fn service(&self, id: &str) -> Option<&ServiceOffer> {
        self.services.iter().find(|s| s.id == id)
    }

    /// True for a live-mode key (`sk_live_…`, `rk_live_…`).
    pub fn is_live_key(&self) -> bool {
        self.secret_key
            .as_deref()
            .is_some_and(|k| k.starts_with("sk_live_") || k.starts_with("rk_live_"))
    }

    fn validate(&self, env: Environment) -> Result<(), ConfigError> {
        let base_ok = (self.api_base.starts_with("http://")
            || self.api_base.starts_with("https://"))
            && !self.api_base.contains(char::is_whitespace);
        if !base_ok {
            return Err(invalid(
                "stripe.api_base",
                "an absolute http:// or https:// URL",
            ));
        }
        if let Some(key) = self.secret_key.as_deref().filter(|k| !k.is_empty()) {
            let test = key.starts_with("sk_test_") || key.starts_with("rk_test_");
            let live = self.is_live_key();
            if !(test || live) || key.contains(char::is_whitespace) {
                let hint = if key.starts_with("pk_") {
                    " (this is a publishable key; use the secret key)"
                } else {
                    ""
                };
                return Err(invalid(
                    "stripe.secret_key",
                    format!("a Stripe secret key, sk_test_… or sk_live_…{hint}"),
                ));
            }
            if env == Environment::Production && test {
                return Err(invalid(
                    "stripe.secret_key",
                    "a live key (sk_live_…) in production; a test key would take no real payment",
                ));
            }
            if env == Environment::Development && live && !self.allow_live_in_development {
                return Err(invalid(
                    "stripe.secret_key",
                    "a test key (sk_test_…) in development; set stripe.allow_live_in_development = true to use a live key",
                ));
            }
            if !self.allowed_sources.is_empty() && !self.allowed_sources.contains(&self.source) {
                return Err(invalid(
                    "stripe.source",
                    format!(
                        "one of stripe.allowed_sources ({}), or the sessions facture creates would be ignored",
                        self.allowed_sources.join(", ")
                    ),
                ));
            }
        }
        for (key, url) in [
            ("stripe.success_url", &self.success_url),
            ("stripe.cancel_url", &self.cancel_url),
        ] {
            let ok = url.is_empty()
                || ((url.starts_with("http://") || url.starts_with("https://"))
                    && !url.contains(char::is_whitespace));
            if !ok {
                return Err(invalid(
                    key,
                    "an absolute http:// or https:// URL, or empty",
                ));
            }
        }
        let source_ok = !self.source.is_empty()
            && self.source.len() <= 100
            && self
                .source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !source_ok {
            return Err(invalid(
                "stripe.source",
                "1 to 100 letters, digits, dashes, underscores or dots",
            ));
        }
        if !(30..=1440).contains(&self.checkout_expiry_minutes) {
            return Err(invalid(
                "stripe.checkout_expiry_minutes",
                "between 30 and 1440 minutes (Stripe's bounds)",
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(invalid("stripe.request_timeout_ms", "at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("stripe.max_attempts", "at least 1"));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.services {
            let id_ok = !s.id.is_empty()
                && s.id.len() <= 64
                && s.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if !id_ok {
                return Err(invalid(
                    "stripe.services.id",
                    format!(
                        "1 to 64 letters, digits, dashes or underscores, got `{}`",
                        s.id
                    ),
                ));
            }
            if !seen.insert(s.id.as_str()) {
                return Err(invalid(
                    "stripe.services.id",
                    format!("unique ids; `{}` appears twice", s.id),
                ));
            }
            if s.name.trim().is_empty() {
                return Err(invalid(
                    "stripe.services.name",
                    format!("a name for service `{}`", s.id),
                ));
            }
            if !(STRIPE_MIN_AMOUNT_CENTS..=STRIPE_MAX_AMOUNT_CENTS).contains(&s.amount_cents) {
                return Err(invalid(
                    "stripe.services.amount_cents",
                    format!(
                        "between {STRIPE_MIN_AMOUNT_CENTS} and {STRIPE_MAX_AMOUNT_CENTS} cents for service `{}`",
                        s.id
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn default_max_live_orders() -> usize {
    2048
}

fn default_max_active_orders() -> usize {
    64
}

fn default_sweep_batch() -> usize {
    1000
}

fn default_background_nice() -> i32 {
    19
}

fn default_ack_slice_us() -> u64 {
    100
}

#[derive(Debug, Clone, Deserialize)]
pub struct EngineSettings {
    pub max_batch: usize,
    pub render_pool: usize,
    pub mailbox_capacity: usize,
    pub max_attempts: u32,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub sweep_interval_secs: u64,
    pub lease_secs: u64,
    pub order_idle_secs: u64,
    /// Orders whose event or pipeline is being worked on at once; the others wait in their
    /// actor's mailbox. Bounds memory (each in-flight order holds its rows, PDF and mail)
    /// and lets the oldest orders finish first instead of every order advancing a little.
    #[serde(default = "default_max_active_orders")]
    pub max_active_orders: usize,
    /// OrderActors alive at once. Past it, a new order's event is left in the database (it
    /// is committed already) for the sweep, which the registry runs again as soon as half
    /// the actors have stopped: a burst far beyond the pipeline's pace costs rows on disk,
    /// not an actor in memory per waiting event.
    #[serde(default = "default_max_live_orders")]
    pub max_live_orders: usize,
    /// Unfinished events (and pipelines) one sweep reads beyond those live actors hold. A
    /// full batch means more may wait: the registry sweeps again as actors stop.
    #[serde(default = "default_sweep_batch")]
    pub sweep_batch: usize,
    /// Niceness (0..=19) of the threads doing work after the acknowledgement: the order
    /// pipeline, mail and the renderer pool. Above 0 they yield the cores to the HTTP
    /// workers and the webhook receiver, so a backlog delays invoices, not acknowledgements.
    #[serde(default = "default_background_nice")]
    pub background_nice: i32,
    /// Time slice (µs) asked of the kernel for the threads an acknowledgement waits on: the
    /// HTTP workers and the webhook receiver. Linux's EEVDF scheduler (6.12 and later) lets
    /// a waking thread with a shorter slice preempt the running one; with the default slice
    /// a woken receiver waited up to a tick behind a background thread. 0 keeps the
    /// kernel's default; otherwise 100 to 100,000 (the kernel's range).
    #[serde(default = "default_ack_slice_us")]
    pub ack_slice_us: u64,
    /// Fault injection: stop every pipeline before this step (as a crash there would).
    /// For recovery tests and drills; never set in normal operation.
    #[serde(default)]
    pub halt_before: Option<String>,
    /// Fault injection: every render sleeps this long on its renderer thread (a slow
    /// consumer, for backpressure tests and drills). 0 (the default) in normal operation.
    #[serde(default)]
    pub render_delay_ms: u64,
    /// Fault injection: every acknowledgement commit holds the receiver's thread this much
    /// longer, as a slow disk's sync would (batching tests and drills). 0 (the default) in
    /// normal operation.
    #[serde(default)]
    pub append_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    File,
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    pub outbox: PathBuf,
    pub smtp_url: String,
    pub from: String,
    pub admin: String,
    pub timeout_secs: u64,
    /// SMTP connections kept open, and so messages sent at once (at least 1).
    pub smtp_connections: usize,
    pub max_attempts: u32,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    #[serde(default)]
    pub templates_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceSettings {
    pub prefix: String,
    pub due_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VatRegime {
    /// VAT charged at `vat_rate_bp`.
    Standard,
    /// Franchise en base (art. 293 B du CGI): no VAT charged.
    Franchise,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompanySettings {
    pub name: String,
    pub legal_form: String,
    pub share_capital: String,
    pub address: String,
    pub siren: String,
    pub siret: String,
    pub rcs: String,
    pub vat_number: String,
    pub vat_regime: VatRegime,
    pub vat_rate_bp: u32,
    pub email: String,
    pub phone: String,
    pub late_penalty_rate: String,
}

impl CompanySettings {
    /// The VAT rate applied to sales: zero in the franchise regime.
    pub fn vat_rate(&self) -> BasisPoints {
        match self.vat_regime {
            VatRegime::Standard => BasisPoints(self.vat_rate_bp),
            VatRegime::Franchise => BasisPoints(0),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricsSettings {
    /// Serve /metrics on its own port instead of the API port.
    #[serde(default)]
    pub port: Option<u16>,
}

/// Where the database lives, parsed from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        const EXPECTED: &str =
            "expected sqlite://relative/path.db, sqlite:///absolute/path.db or postgres://user@host/db";
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("database.url", EXPECTED));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            Err(invalid("database.url", format!("{EXPECTED}, got `{url}`")))
        }
    }
}

fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        One(String),
    }
    let items = match Option::<ListOrString>::deserialize(d)? {
        None => Vec::new(),
        Some(ListOrString::List(v)) => v,
        Some(ListOrString::One(s)) => s.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

impl Settings {
    /// The layered figment: defaults, optional file, environment.
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        fig.merge(Env::prefixed("FACTURE__").split("__").lowercase(true))
    }

    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file))
    }

    pub fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = fig.extract().map_err(|e| {
            // figment's message names the key and the expected type; keep it to one line.
            let mut msg = e.to_string();
            if let Some(path) = e.path.last() {
                if !msg.contains(path.as_str()) {
                    msg = format!("key `{}`: {msg}", e.path.join("."));
                }
            }
            ConfigError::Load(msg.replace('\n', " "))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn database_url(&self) -> Result<DatabaseUrl, ConfigError> {
        DatabaseUrl::parse(&self.database.url)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database_url()?;
        if self.server.host.trim().is_empty() {
            return Err(invalid("server.host", "a host name or IP address"));
        }
        if self.server.workers == 0 {
            return Err(invalid("server.workers", "at least 1"));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "at least 1"));
        }
        if self.server.webhook_body_limit < 1024 {
            return Err(invalid("server.webhook_body_limit", "at least 1024 bytes"));
        }
        let url_ok = self.app.public_url.starts_with("http://")
            || self.app.public_url.starts_with("https://");
        if !url_ok {
            return Err(invalid(
                "app.public_url",
                "an absolute http:// or https:// URL",
            ));
        }
        if self.mail.transport == MailTransportKind::Smtp
            && !(self.mail.smtp_url.starts_with("smtp://")
                || self.mail.smtp_url.starts_with("smtps://"))
        {
            return Err(invalid("mail.smtp_url", "an smtp:// or smtps:// URL"));
        }
        if self.mail.smtp_connections == 0 {
            return Err(invalid("mail.smtp_connections", "at least 1"));
        }
        if !self.mail.from.contains('@') {
            return Err(invalid("mail.from", "an email address"));
        }
        if !self.mail.admin.contains('@') {
            return Err(invalid("mail.admin", "an email address"));
        }
        if self.company.vat_rate_bp > 10_000 {
            return Err(invalid(
                "company.vat_rate_bp",
                "a rate in basis points between 0 and 10000",
            ));
        }
        if self.company.name.trim().is_empty() {
            return Err(invalid("company.name", "the company name"));
        }
        let prefix_ok = !self.invoice.prefix.is_empty()
            && self
                .invoice
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !prefix_ok {
            return Err(invalid("invoice.prefix", "letters, digits and dashes"));
        }
        if self.engine.max_batch == 0 || self.engine.mailbox_capacity == 0 {
            return Err(invalid(
                "engine.max_batch / engine.mailbox_capacity",
                "at least 1",
            ));
        }
        if self.engine.max_active_orders == 0 {
            return Err(invalid("engine.max_active_orders", "at least 1"));
        }
        if self.engine.max_live_orders < self.engine.max_active_orders {
            return Err(invalid(
                "engine.max_live_orders",
                "at least engine.max_active_orders",
            ));
        }
        if self.engine.max_attempts == 0 {
            return Err(invalid("engine.max_attempts", "at least 1"));
        }
        if !(0..=19).contains(&self.engine.background_nice) {
            return Err(invalid(
                "engine.background_nice",
                "between 0 (off) and 19: a process may lower its threads' priority, not raise it",
            ));
        }
        if self.engine.ack_slice_us != 0 && !(100..=100_000).contains(&self.engine.ack_slice_us) {
            return Err(invalid(
                "engine.ack_slice_us",
                "0 (the kernel's default) or between 100 and 100000 microseconds",
            ));
        }
        for (key, delay) in [
            ("engine.render_delay_ms", self.engine.render_delay_ms),
            ("engine.append_delay_ms", self.engine.append_delay_ms),
        ] {
            if delay > 60_000 {
                return Err(invalid(
                    key,
                    "at most 60000 (a fault-injection delay; 0 in normal operation)",
                ));
            }
        }
        self.stripe.validate(self.env)?;
        Ok(())
    }

    /// The Checkout success URL (`stripe.success_url`, or one under `app.public_url`).
    pub fn checkout_success_url(&self) -> String {
        if self.stripe.success_url.is_empty() {
            format!(
                "{}/paiement/succes?session_id={{CHECKOUT_SESSION_ID}}",
                self.app.public_url.trim_end_matches('/')
            )
        } else {
            self.stripe.success_url.clone()
        }
    }

    /// The Checkout cancel URL (`stripe.cancel_url`, or one under `app.public_url`).
    pub fn checkout_cancel_url(&self) -> String {
        if self.stripe.cancel_url.is_empty() {
            format!(
                "{}/paiement/annule",
                self.app.public_url.trim_end_matches('/')
            )
        } else {
            self.stripe.cancel_url.clone()
        }
    }

    /// Fills missing secrets. In development they are generated once and kept under
    /// `app.data_dir` so restarts keep accepting the same signatures and tokens; in
    /// production a missing secret is an error. Returns the keys that were generated.
    pub fn ensure_secrets(&mut self) -> Result<Vec<&'static str>, ConfigError> {
        let mut generated = Vec::new();
        if self.stripe.webhook_secrets.is_empty() {
            if self.env == Environment::Production {
                return Err(ConfigError::MissingSecret {
                    key: "stripe.webhook_secrets",
                    hint: "set FACTURE__STRIPE__WEBHOOK_SECRETS",
                });
            }
            let (secret, fresh) = self.dev_secret("webhook_secret", || {
                format!("whsec_{}", crate::random_hex(24))
            })?;
            self.stripe.webhook_secrets = vec![secret];
            if fresh {
                generated.push("stripe.webhook_secrets");
            }
        }
        if self.auth.jwt_secret.as_deref().unwrap_or("").is_empty() {
            if self.env == Environment::Production {
                return Err(ConfigError::MissingSecret {
                    key: "auth.jwt_secret",
                    hint: "set FACTURE__AUTH__JWT_SECRET",
                });
            }
            let (secret, fresh) = self.dev_secret("jwt_secret", || crate::random_hex(32))?;
            self.auth.jwt_secret = Some(secret);
            if fresh {
                generated.push("auth.jwt_secret");
            }
        }
        Ok(generated)
    }

    fn dev_secret(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<(String, bool), ConfigError> {
        let path = self.app.data_dir.join(format!("dev-{name}"));
        if let Ok(existing) = std::fs::read_to_string(&path) {
            let existing = existing.trim().to_owned();
            if !existing.is_empty() {
                return Ok((existing, false));
            }
        }
        let secret = make();
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.app.data_dir)?;
            std::fs::write(&path, &secret)
        };
        write().map_err(|source| ConfigError::SecretFile {
            path: path.clone(),
            source,
        })?;
        Ok((secret, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        for (k, v) in pairs {
            fig = fig.merge((*k, *v));
        }
        Settings::from_figment(fig)
    }

    #[test]
    fn defaults_are_valid() {
        let s = with(&[]).expect("defaults load");
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.server.host, "127.0.0.1");
        assert_eq!(
            s.database_url().unwrap(),
            DatabaseUrl::Sqlite("data/facture.db".into())
        );
        assert_eq!(s.company.vat_rate(), BasisPoints(2000));
    }

    #[test]
    fn database_urls_parse() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        let err = DatabaseUrl::parse("mysql://x").unwrap_err().to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn a_bad_port_names_the_key() {
        let err = with(&[("server.port", "lots")]).unwrap_err().to_string();
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn zero_smtp_connections_is_refused() {
        let err = with(&[("mail.smtp_connections", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mail.smtp_connections"), "{err}");
        assert_eq!(with(&[]).unwrap().mail.smtp_connections, 8);
    }

    #[test]
    fn background_nice_outside_0_to_19_is_refused() {
        for bad in ["-1", "20"] {
            let err = with(&[("engine.background_nice", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("engine.background_nice"), "{bad}: {err}");
        }
        assert_eq!(with(&[]).unwrap().engine.background_nice, 19);
    }

    #[test]
    fn fault_injection_delays_over_a_minute_are_refused() {
        for key in ["engine.render_delay_ms", "engine.append_delay_ms"] {
            let delay = |ms: u64| {
                Settings::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge((key, ms)))
            };
            let err = delay(60_001).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(delay(60_000).is_ok(), "{key}: a minute is allowed");
        }
        let defaults = with(&[]).unwrap().engine;
        assert_eq!((defaults.render_delay_ms, defaults.append_delay_ms), (0, 0));
    }

    #[test]
    fn ack_slice_outside_the_kernels_range_is_refused() {
        let slice = |us: u64| {
            Settings::from_figment(
                Figment::from(Toml::string(DEFAULT_TOML)).merge(("engine.ack_slice_us", us)),
            )
        };
        for bad in [50, 100_001] {
            let err = slice(bad).unwrap_err().to_string();
            assert!(err.contains("engine.ack_slice_us"), "{bad}: {err}");
        }
        for good in [0, 100, 100_000] {
            assert_eq!(slice(good).unwrap().engine.ack_slice_us, good);
        }
        assert_eq!(with(&[]).unwrap().engine.ack_slice_us, 100);
    }

    #[test]
    fn webhook_secrets_split_on_commas() {
        let s = with(&[("stripe.webhook_secrets", "whsec_a, whsec_b,")]).unwrap();
        assert_eq!(s.stripe.webhook_secrets, vec!["whsec_a", "whsec_b"]);
    }

    #[test]
    fn franchise_regime_has_no_vat() {
        let s = with(&[("company.vat_regime", "franchise")]).unwrap();
        assert_eq!(s.company.vat_rate(), BasisPoints(0));
    }

    #[test]
    fn production_refuses_missing_secrets_and_development_generates_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let mut prod = with(&[("env", "production"), ("app.data_dir", data)]).unwrap();
        let err = prod.ensure_secrets().unwrap_err().to_string();
        assert!(err.contains("stripe.webhook_secrets"), "{err}");

        let mut dev = with(&[("app.data_dir", data)]).unwrap();
        let generated = dev.ensure_secrets().unwrap();
        assert_eq!(generated, vec!["stripe.webhook_secrets", "auth.jwt_secret"]);
        let first = dev.stripe.webhook_secrets.clone();
        let mut again = with(&[("app.data_dir", data)]).unwrap();
        assert!(again.ensure_secrets().unwrap().is_empty());
        assert_eq!(again.stripe.webhook_secrets, first, "kept across restarts");
    }

    #[test]
    fn stripe_keys_match_the_environment() {
        let ok = with(&[("stripe.secret_key", "sk_test_123")]).unwrap();
        assert!(!ok.stripe.is_live_key());
        let err = with(&[("stripe.secret_key", "sk_live_123")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("stripe.secret_key"), "{err}");
        assert!(err.contains("allow_live_in_development"), "{err}");
        let live = Settings::from_figment(
            Figment::from(Toml::string(DEFAULT_TOML))
                .merge(("stripe.secret_key", "sk_live_123"))
                .merge(("stripe.allow_live_in_development", true)),
        )
        .unwrap();
        assert!(live.stripe.is_live_key());

        let err = with(&[("env", "production"), ("stripe.secret_key", "sk_test_123")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("stripe.secret_key"), "{err}");
        assert!(with(&[("env", "production"), ("stripe.secret_key", "sk_live_123")]).is_ok());

        for bad in ["pk_test_123", "whsec_123", "sk_test_ 1"] {
            let err = with(&[("stripe.secret_key", bad)]).unwrap_err().to_string();
            assert!(err.contains("stripe.secret_key"), "{bad}: {err}");
        }
        // No key at all: checkout is simply not offered.
        assert!(with(&[]).unwrap().stripe.secret_key.is_none());
    }

    #[test]
    fn checkout_settings_have_defaults_and_are_validated() {
        let s = with(&[]).unwrap();
        assert_eq!(s.stripe.source, "facture");
        assert_eq!(
            s.checkout_success_url(),
            "http://127.0.0.1:8080/paiement/succes?session_id={CHECKOUT_SESSION_ID}"
        );
        assert_eq!(
            s.checkout_cancel_url(),
            "http://127.0.0.1:8080/paiement/annule"
        );
        assert!(!s.stripe.services.is_empty(), "a sample price list ships");
        let first = &s.stripe.services[0];
        assert_eq!(s.stripe.service(&first.id), Some(first));
        assert!(s.stripe.service("nope").is_none());

        let s = with(&[("stripe.success_url", "https://shop.example/ok")]).unwrap();
        assert_eq!(s.checkout_success_url(), "https://shop.example/ok");

        for (key, value) in [
            ("stripe.success_url", "/relative"),
            ("stripe.cancel_url", "ftp://x"),
            ("stripe.api_base", "api.stripe.com"),
            ("stripe.source", "bad source"),
            ("stripe.checkout_expiry_minutes", "10"),
            ("stripe.checkout_expiry_minutes", "2000"),
            ("stripe.max_attempts", "0"),
        ] {
            let err = with(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{key}={value}: {err}");
        }

        // The sessions facture creates must pass its own source filter.
        let err = with(&[
            ("stripe.secret_key", "sk_test_1"),
            ("stripe.allowed_sources", "other-site"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("stripe.source"), "{err}");
        assert!(with(&[
            ("stripe.secret_key", "sk_test_1"),
            ("stripe.allowed_sources", "other-site,facture"),
        ])
        .is_ok());
    }

    #[test]
    fn the_price_list_is_validated() {
        let list = |services: &str| {
            let toml = format!("{DEFAULT_TOML}\n{services}");
            let fig = Figment::from(Toml::string(&toml));
            Settings::from_figment(fig)
        };
        let ok =
            list("[[stripe.services]]\nid = \"extra\"\nname = \"Extra\"\namount_cents = 5000\n");
        assert!(ok.is_ok(), "{:?}", ok.err());
        let cases = [
            (
                "id = \"\"\nname = \"X\"\namount_cents = 5000",
                "stripe.services.id",
            ),
            (
                "id = \"a b\"\nname = \"X\"\namount_cents = 5000",
                "stripe.services.id",
            ),
            (
                "id = \"y\"\nname = \" \"\namount_cents = 5000",
                "stripe.services.name",
            ),
            (
                "id = \"y\"\nname = \"Y\"\namount_cents = 10",
                "stripe.services.amount_cents",
            ),
        ];
        for (body, key) in cases {
            let err = list(&format!("[[stripe.services]]\n{body}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{body}: {err}");
        }
        let first = with(&[]).unwrap().stripe.services[0].id.clone();
        let dup =
            format!("[[stripe.services]]\nid = \"{first}\"\nname = \"D\"\namount_cents = 5000\n");
        let err = list(&dup).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }
}
