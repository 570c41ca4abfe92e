//! Where messages go: an SMTP server (lettre, pooled connections) or `.eml` files.
//!
//! `mail.smtp_url` follows lettre's URL format: `smtp://host:port` (plain),
//! `smtp://host:587?tls=required` (STARTTLS required; `tls=opportunistic` also works),
//! `smtps://host:465` (implicit TLS); credentials as `smtp://user:password@host`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use super::retry::Transience;
use super::smtp_pool::{SmtpPool, SmtpServer};
use super::MailError;
use crate::config::{MailSettings, MailTransportKind};

/// An idle pooled connection is closed after this long.
const SMTP_IDLE: Duration = Duration::from_secs(60);

/// A configured transport. Cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub enum Transport {
    /// `smtp://` (plain or STARTTLS): facture's own pool, see `smtp_pool`.
    Smtp(Arc<SmtpPool>),
    /// `smtps://` (implicit TLS): lettre's pooled transport.
    Smtps {
        smtp: AsyncSmtpTransport<Tokio1Executor>,
        /// One permit per pooled connection.
        slots: Arc<Semaphore>,
    },
    /// Writes each message as `<outbox>/<timestamp>-<recipient>-<kind>-<id>.eml`.
    File { outbox: PathBuf },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::Smtps { .. } => f.write_str("Transport::Smtps"),
            Transport::File { outbox } => write!(f, "Transport::File({})", outbox.display()),
        }
    }
}

/// One failed attempt: the server's answer (or the local error) and whether another
/// attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub transient: bool,
    pub message: String,
}

impl SendError {
    pub fn transient(message: impl Into<String>) -> Self {
        SendError {
            transient: true,
            message: message.into(),
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        SendError {
            transient: false,
            message: message.into(),
        }
    }

    /// SMTP 4xx, timeouts, refused or dropped connections, unparsable answers: transient.
    /// SMTP 5xx, TLS failures, client-side refusals, a shut-down transport: permanent.
    pub fn from_smtp(e: &lettre::transport::smtp::Error) -> Self {
        let message = e.to_string();
        let permanent =
            e.is_permanent() || e.is_tls() || e.is_client() || e.is_transport_shutdown();
        let transient = e.is_transient() || e.is_timeout() || !permanent;
        SendError { transient, message }
    }

    fn from_io(what: &str, path: &Path, e: &std::io::Error) -> Self {
        let message = format!("{what} {}: {e}", path.display());
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            SendError::permanent(message)
        } else {
            SendError::transient(message)
        }
    }
}

impl Transience for SendError {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

impl Transport {
    pub fn from_settings(mail: &MailSettings) -> Result<Transport, MailError> {
        match mail.transport {
            MailTransportKind::File => Ok(Transport::File {
                outbox: mail.outbox.clone(),
            }),
            MailTransportKind::Smtp => {
                let bad_url = |e: String| MailError::Config(format!("mail.smtp_url: {e}"));
                let timeout = Duration::from_secs(mail.timeout_secs.max(1));
                // Messages beyond this many wait for a pooled connection: see `smtp_pool`
                // for why (lettre's pool would open one per message).
                let connections = mail.smtp_connections.max(1);
                if let Some(server) = SmtpServer::from_url(&mail.smtp_url).map_err(bad_url)? {
                    let pool = SmtpPool::new(server, connections, timeout, SMTP_IDLE);
                    return Ok(Transport::Smtp(Arc::new(pool)));
                }
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&mail.smtp_url)
                    .map_err(|e| bad_url(e.to_string()))?;
                Ok(Transport::Smtps {
                    smtp: builder
                        .timeout(Some(timeout))
                        .pool_config(
                            PoolConfig::new()
                                .max_size(u32::try_from(connections).unwrap_or(u32::MAX))
                                .idle_timeout(SMTP_IDLE),
                        )
                        .build(),
                    slots: Arc::new(Semaphore::new(connections)),
                })
            }
        }
    }

    /// Sends one formatted message. `label` (recipient, kind, delivery id) names the file
    /// for the file transport.
    pub async fn send(
        &self,
        envelope: &Envelope,
        raw: &[u8],
        label: &FileLabel<'_>,
    ) -> Result<(), SendError> {
        match self {
            Transport::Smtp(pool) => pool.send(envelope, raw).await,
            Transport::Smtps { smtp, slots } => {
                let _slot = slots
                    .acquire()
                    .await
                    .map_err(|_| SendError::permanent("the SMTP transport is closed"))?;
                smtp.send_raw(envelope, raw)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::from_smtp(&e))
            }
            Transport::File { outbox } => {
                let dir = outbox.clone();
                let name = label.file_name();
                let raw = raw.to_vec();
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &raw))
                    .await
                    .map_err(|e| SendError::transient(format!("outbox writer: {e}")))?
            }
        }
    }
}

/// What the file transport puts in a file name.
#[derive(Debug, Clone)]
pub struct FileLabel<'a> {
    pub at: NaiveDateTime,
    pub recipient: &'a str,
    pub kind: &'a str,
    pub delivery_id: &'a str,
}

impl FileLabel<'_> {
    /// `20261124T143000.123456Z-emilie@example.fr-payment_confirmation-1a2b3c4d.eml`:
    /// sorted by time, readable, unique per delivery attempt.
    pub fn file_name(&self) -> String {
        let short: String = self.delivery_id.chars().take(8).collect();
        format!(
            "{}-{}-{}-{}.eml",
            self.at.format("%Y%m%dT%H%M%S%.6fZ"),
            sanitize(bare_address(self.recipient)),
            sanitize(self.kind),
            sanitize(&short)
        )
    }
}

/// `Name <a@b>` → `a@b`.
fn bare_address(s: &str) -> &str {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(start), Some(end)) if start < end => &s[start + 1..end],
        _ => s.trim(),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `<dir>/.<name>.tmp`, syncs it, and renames it to `<dir>/<name>`, so a reader
/// of the outbox never sees half a message.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SendError> {
    std::fs::create_dir_all(dir).map_err(|e| SendError::from_io("cannot create", dir, &e))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(SendError::from_io("cannot write", &tmp, &e));
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SendError::from_io("cannot rename into", &target, &e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_readable() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
            .unwrap()
            .and_hms_micro_opt(14, 30, 0, 42)
            .unwrap();
        let label = FileLabel {
            at,
            recipient: "Émilie D. <emilie/../x@example.fr>",
            kind: "payment_confirmation",
            delivery_id: "0123456789abcdef",
        };
        assert_eq!(
            label.file_name(),
            "20261124T143000.000042Z-emilie_.._x@example.fr-payment_confirmation-01234567.eml"
        );
    }
}
