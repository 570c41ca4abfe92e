//! facture's own pool of SMTP connections for `smtp://` URLs (plain or STARTTLS), built on
//! lettre's public `AsyncSmtpConnection`.
//!
//! Why not lettre's pooled transport: lettre 0.11.23 leaves Nagle's algorithm on, and its
//! `message` writes the body and then the final `\r\n.\r\n` as two writes, so on a reused
//! connection the five bytes wait for the server's delayed ACK: 40 ms per message, whatever
//! the server (lettre/lettre#1159 fixes it upstream; no release carries it yet). Its pool
//! also opens a fresh connection whenever none is idle and closes it after one message
//! once the pool is full, and checks every idle connection with a `NOOP` round trip before
//! use. Here connections are opened with `TCP_NODELAY`, at most `size` messages are sent at
//! once (the others wait for a pooled connection), and a connection idle for longer than
//! `idle_for` is closed instead of tested; a pooled connection the server has dropped fails
//! before anything is accepted and the message is sent again once on a new connection.
//! `smtps://` (implicit TLS) keeps lettre's transport.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::Error as SmtpError;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::transport::SendError;

const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;

/// When to upgrade with STARTTLS (`?tls=` in the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartTls {
    Never,
    Opportunistic,
    Required,
}

/// Where and how to connect, read from an `smtp://` URL (lettre's URL format).
#[derive(Debug, Clone)]
pub struct SmtpServer {
    host: String,
    port: u16,
    starttls: StartTls,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpServer {
    /// `None` for a URL this pool does not serve (`smtps://`); an error for a URL that is
    /// wrong.
    pub fn from_url(url: &str) -> Result<Option<SmtpServer>, String> {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        if parsed.scheme() != "smtp" {
            return Ok(None);
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("no host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let starttls = match tls.as_deref() {
            None => StartTls::Never,
            Some("opportunistic") => StartTls::Opportunistic,
            Some("required") => StartTls::Required,
            Some(other) => return Err(format!("unknown tls parameter {other:?}")),
        };
        let default_port = if starttls == StartTls::Never {
            SMTP_PORT
        } else {
            SUBMISSION_PORT
        };
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| -> Result<String, String> {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|e| e.to_string())
        };
        let credentials = match parsed.password() {
            Some(password) => Some(Credentials::new(
                decode(parsed.username())?,
                decode(password)?,
            )),
            None => None,
        };
        Ok(Some(SmtpServer {
            port: parsed.port().unwrap_or(default_port),
            host,
            starttls,
            hello,
            credentials,
        }))
    }
}

/// A pooled connection and when it was last used.
struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Connections to one SMTP server, shared by every sender.
pub struct SmtpPool {
    server: SmtpServer,
    timeout: Duration,
    idle_for: Duration,
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection: at most this many messages in flight.
    slots: Semaphore,
}

impl SmtpPool {
    pub fn new(server: SmtpServer, size: usize, timeout: Duration, idle_for: Duration) -> Self {
        SmtpPool {
            server,
            timeout,
            idle_for,
            idle: Mutex::new(Vec::with_capacity(size)),
            slots: Semaphore::new(size),
        }
    }

    /// Sends one message, waiting for a free connection first.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::permanent("the SMTP pool is closed"))?;
        if let Some(conn) = self.take_idle().await {
            match self.send_on(conn, envelope, raw).await {
                // The connection died while idle (server timeout, restart): a new one.
                Err(e) if e.connection_lost() => {
                    tracing::debug!(error = %e, "pooled SMTP connection lost; reconnecting");
                }
                done => return done.map_err(SendError::from),
            }
        }
        let conn = self.connect().await.map_err(SendError::from)?;
        self.send_on(conn, envelope, raw)
            .await
            .map_err(SendError::from)
    }

    /// Sends on `conn`, then keeps it for the next message if it is still in a known state:
    /// after success or an SMTP answer, unless lettre marked it broken. A timed-out or
    /// failed connection is closed.
    async fn send_on(
        &self,
        mut conn: AsyncSmtpConnection,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<(), Failure> {
        let result = match tokio::time::timeout(self.timeout, conn.send(envelope, raw)).await {
            Ok(result) => result.map(drop).map_err(Failure::Smtp),
            Err(_) => Err(Failure::TimedOut),
        };
        let reusable = match &result {
            Ok(()) => true,
            Err(e) => !e.connection_lost() && !matches!(e, Failure::TimedOut),
        };
        if reusable && !conn.has_broken() {
            self.idle.lock().await.push(Idle {
                conn,
                since: Instant::now(),
            });
        } else {
            close(conn).await;
        }
        result
    }

    /// The most recently used idle connection. Older ones past `idle_for` are closed, outside
    /// the lock: a server that stopped answering must not hold up the other senders.
    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let (fresh, expired) = {
            let mut idle = self.idle.lock().await;
            match idle.pop() {
                Some(last) if last.since.elapsed() < self.idle_for => (Some(last), Vec::new()),
                // Connections are pushed as they are used: below an expired one, all are older.
                Some(last) => {
                    let mut expired = std::mem::take(&mut *idle);
                    expired.push(last);
                    (None, expired)
                }
                None => (None, Vec::new()),
            }
        };
        for old in expired {
            close(old.conn).await;
        }
        fresh.map(|i| i.conn)
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, greeting, EHLO, STARTTLS as the URL
    /// asks, then authentication when credentials are given.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let server = &self.server;
        let opened = async {
            let tcp = TcpStream::connect((server.host.as_str(), server.port)).await?;
            tcp.set_nodelay(true)?;
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &server.hello).await?;
            let upgrade = match server.starttls {
                StartTls::Never => false,
                StartTls::Opportunistic => conn.can_starttls(),
                StartTls::Required => true,
            };
            if upgrade {
                let tls = TlsParameters::new(server.host.clone())?;
                conn.starttls(tls, &server.hello).await?;
            }
            if let Some(credentials) = &server.credentials {
                conn.auth(DEFAULT_MECHANISMS, credentials).await?;
            }
            Ok::<_, Failure>(conn)
        };
        tokio::time::timeout(self.timeout, opened)
            .await
            .unwrap_or(Err(Failure::TimedOut))
    }
}

/// Says QUIT if the connection can still take it, within a second, and drops it.
async fn close(mut conn: AsyncSmtpConnection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
}

/// Why a connection or a send failed. lettre builds its own network errors privately, so
/// the socket's errors and timeouts are kept apart here.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("SMTP connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the SMTP server did not answer in time")]
    TimedOut,
}

impl Failure {
    /// The connection failed without the server answering (no 4xx or 5xx): on a pooled
    /// connection, the server most likely closed it while it was idle.
    fn connection_lost(&self) -> bool {
        match self {
            Failure::Smtp(e) => !(e.is_transient() || e.is_permanent()),
            Failure::Io(_) => true,
            Failure::TimedOut => false,
        }
    }
}

impl From<Failure> for SendError {
    /// A refused connection, a dropped socket or a timeout may work later: transient.
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Smtp(e) => SendError::from_smtp(&e),
            other => SendError::transient(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_url_defaults_to_port_25_without_tls() {
        let s = SmtpServer::from_url("smtp://mail.example.fr")
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.starttls),
            ("mail.example.fr", 25, StartTls::Never)
        );
        assert!(s.credentials.is_none());
    }

    #[test]
    fn starttls_url_reads_port_mode_credentials_and_hello_name() {
        let s = SmtpServer::from_url(
            "smtp://me%40x.fr:p%2Fw@relay.x.fr:2525/facture.x.fr?tls=required",
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.port, s.starttls), (2525, StartTls::Required));
        assert_eq!(s.hello, ClientId::Domain("facture.x.fr".into()));
        assert_eq!(
            s.credentials,
            Some(Credentials::new("me@x.fr".into(), "p/w".into()))
        );
        let s = SmtpServer::from_url("smtp://relay.x.fr?tls=opportunistic")
            .unwrap()
            .unwrap();
        assert_eq!((s.port, s.starttls), (587, StartTls::Opportunistic));
    }

    #[test]
    fn implicit_tls_is_left_to_lettre_and_bad_urls_are_refused() {
        assert!(SmtpServer::from_url("smtps://relay.x.fr")
            .unwrap()
            .is_none());
        assert!(SmtpServer::from_url("smtp://relay.x.fr?tls=sometimes").is_err());
        assert!(SmtpServer::from_url("not a url").is_err());
    }
}
