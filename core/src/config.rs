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
    /// Fault injection: stop every pipeline before this step (as a crash there would).
    /// For recovery tests and drills; never set in normal operation.
    #[serde(default)]
    pub halt_before: Option<String>,
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
        if self.engine.max_attempts == 0 {
            return Err(invalid("engine.max_attempts", "at least 1"));
        }
        Ok(())
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
}
