//! A real, minimal SMTP server on 127.0.0.1 for tests, and a small MIME reader.
//!
//! [`SmtpSink`] speaks enough SMTP for lettre (EHLO/HELO, MAIL FROM, RCPT TO, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT), keeps every accepted message, and can be told to
//! refuse ([`SinkMode`]), stopped (connections refused) and restarted on the same port.
//!
//! [`parse_mail`] reads a message back: decoded subject, text and HTML parts, and
//! attachments (base64 / quoted-printable decoded).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkMode {
    /// Accept every message.
    #[default]
    Accept,
    /// Refuse every recipient with `550 5.1.1` (a permanent failure).
    Reject550,
    /// Refuse every transaction at MAIL FROM with `451 4.3.0` (a transient failure).
    Tempfail451,
}

/// A message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The envelope sender (MAIL FROM), without angle brackets.
    pub from: String,
    /// The envelope recipients (RCPT TO), without angle brackets.
    pub recipients: Vec<String>,
    /// The message as transmitted, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

impl ReceivedMessage {
    pub fn parse(&self) -> ParsedMail {
        parse_mail(&self.data)
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMessage>>,
    /// Keep no message, only count them (a load test's hundreds of thousands of mails).
    discard: bool,
    accepted: AtomicUsize,
    mode: Mutex<SinkMode>,
    notify: Notify,
    transactions: AtomicUsize,
    connections: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A test SMTP server. Dropping it stops it.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Listens on 127.0.0.1 on a free port.
    pub async fn start() -> SmtpSink {
        let listener = bind(0).await.expect("SMTP sink binds 127.0.0.1:0");
        Self::serving(listener)
    }

    /// Listens on 127.0.0.1:`port` and accepts every message without keeping it: only
    /// [`SmtpSink::accepted`] counts them. The mail server of `benches/run.sh`.
    pub async fn start_discarding_on(port: u16) -> std::io::Result<SmtpSink> {
        let listener = bind(port).await?;
        Ok(Self::serving_with(listener, true))
    }

    fn serving(listener: TcpListener) -> SmtpSink {
        Self::serving_with(listener, false)
    }

    fn serving_with(listener: TcpListener, discard: bool) -> SmtpSink {
        let port = listener.local_addr().expect("bound address").port();
        let shared = Arc::new(Shared {
            discard,
            ..Shared::default()
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        SmtpSink {
            port,
            shared,
            server: Mutex::new(Some(server)),
        }
    }

    /// Listens on 127.0.0.1:`port`: a port reserved (and left unanswered) earlier, so a
    /// mail server that was down comes up where the application already points.
    pub async fn start_on(port: u16) -> SmtpSink {
        let listener = bind(port)
            .await
            .unwrap_or_else(|e| panic!("SMTP sink binds 127.0.0.1:{port}: {e}"));
        Self::serving(listener)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT`, for `mail.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: SinkMode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Every accepted message so far.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        lock(&self.shared.messages).clone()
    }

    /// Messages accepted so far, kept or not.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Transactions started (MAIL FROM commands received, accepted or not).
    pub fn transactions(&self) -> usize {
        self.shared.transactions.load(Ordering::SeqCst)
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted and returns them all.
    /// Panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "SMTP sink: expected {n} message(s) within {timeout:?}, got {}",
                    self.messages().len()
                );
            }
        }
    }

    /// Stops listening and drops every open connection: connecting is refused until
    /// [`SmtpSink::restart`].
    pub async fn stop(&self) {
        let server = lock(&self.server).take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port (after [`SmtpSink::stop`]; a no-op when running).
    pub async fn restart(&self) {
        if lock(&self.server).is_some() {
            return;
        }
        let listener = bind(self.port)
            .await
            .unwrap_or_else(|e| panic!("SMTP sink re-binds port {}: {e}", self.port));
        let server = tokio::spawn(serve(listener, self.shared.clone()));
        *lock(&self.server) = Some(server);
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(server) = lock(&self.server).take() {
            server.abort();
        }
    }
}

async fn bind(port: u16) -> std::io::Result<TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut last = None;
    // Right after a stop the kernel may need a moment to release the port.
    for _ in 0..50 {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(128)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every session.
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    sessions.spawn(session(stream, shared.clone()));
                }
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// The address inside `FROM:<a@b> SIZE=1` / `TO:<a@b>`.
fn path_arg(arg: &str) -> String {
    let after_colon = arg
        .split_once(':')
        .map(|(_, rest)| rest)
        .unwrap_or(arg)
        .trim();
    match (after_colon.find('<'), after_colon.find('>')) {
        (Some(start), Some(end)) if start < end => after_colon[start + 1..end].to_owned(),
        _ => after_colon
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

const MAX_LINE: usize = 64 * 1024;

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"220 127.0.0.1 facture test sink ESMTP\r\n")
        .await?;
    let mut from: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 || line.len() > MAX_LINE {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let mode = *lock(&shared.mode);
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => format!(
                "250-127.0.0.1 greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n"
            ),
            "HELO" => format!("250 127.0.0.1 greets {arg}\r\n"),
            "MAIL" => {
                shared.transactions.fetch_add(1, Ordering::SeqCst);
                recipients.clear();
                if mode == SinkMode::Tempfail451 {
                    from = None;
                    "451 4.3.0 Temporary local problem, try again later\r\n".to_owned()
                } else {
                    from = Some(path_arg(arg));
                    "250 2.1.0 Sender OK\r\n".to_owned()
                }
            }
            "RCPT" => {
                let to = path_arg(arg);
                if from.is_none() {
                    "503 5.5.1 Need MAIL first\r\n".to_owned()
                } else if mode == SinkMode::Reject550 {
                    format!("550 5.1.1 <{to}>: Recipient address rejected: User unknown\r\n")
                } else {
                    recipients.push(to);
                    "250 2.1.5 Recipient OK\r\n".to_owned()
                }
            }
            "DATA" => {
                if from.is_none() || recipients.is_empty() {
                    "503 5.5.1 Need MAIL and RCPT first\r\n".to_owned()
                } else {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let data = read_data(&mut reader).await?;
                    let message = ReceivedMessage {
                        from: from.take().unwrap_or_default(),
                        recipients: std::mem::take(&mut recipients),
                        data,
                    };
                    if !shared.discard {
                        lock(&shared.messages).push(message);
                    }
                    let n = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    shared.notify.notify_waiters();
                    format!("250 2.0.0 OK queued as {n}\r\n")
                }
            }
            "RSET" => {
                from = None;
                recipients.clear();
                "250 2.0.0 OK\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_owned(),
            "VRFY" => "252 2.0.0 Cannot VRFY user\r\n".to_owned(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "500 5.5.2 Command not recognized\r\n".to_owned(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Reads DATA lines up to the lone `.`, removing the stuffed leading dot of each line.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let start = usize::from(line.first() == Some(&b'.'));
        data.extend_from_slice(&line[start..]);
    }
}

// ---------------------------------------------------------------------------------------
// MIME

/// A message read back by [`parse_mail`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMail {
    /// Top-level headers, unfolded, values decoded (RFC 2047), in order.
    pub headers: Vec<(String, String)>,
    pub subject: String,
    /// The first `text/plain` part that is not an attachment (line ends as `\n`).
    pub text: Option<String>,
    /// The first `text/html` part that is not an attachment (line ends as `\n`).
    pub html: Option<String>,
    pub attachments: Vec<ParsedAttachment>,
    /// Every part's content type, depth first (`multipart/mixed`, ...).
    pub content_types: Vec<String>,
}

impl ParsedMail {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAttachment {
    pub filename: Option<String>,
    /// Lowercase, without parameters: `application/pdf`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Parses a whole message (headers and MIME tree). Lenient: what it cannot read is
/// left out.
pub fn parse_mail(raw: &[u8]) -> ParsedMail {
    let normalized = crlf_to_lf(raw);
    let (headers, body) = split_headers(&normalized);
    let decoded: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), decode_words(v)))
        .collect();
    let mut mail = ParsedMail {
        subject: decoded
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("subject"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        headers: decoded,
        ..ParsedMail::default()
    };
    walk(&headers, body, &mut mail);
    mail
}

fn crlf_to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Headers (unfolded) and the body after the first empty line.
fn split_headers(part: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, body) = match find(part, b"\n\n") {
        Some(at) => (&part[..at], &part[at + 2..]),
        None if part.first() == Some(&b'\n') => (&part[..0], &part[1..]),
        None => (part, &part[part.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `text/plain; charset="utf-8"` → (`text/plain`, {charset: utf-8}). Handles RFC 2231
/// `name*=utf-8''percent%20encoded`.
fn value_and_params(value: &str) -> (String, HashMap<String, String>) {
    let mut pieces = value.split(';');
    let main = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let mut params = HashMap::new();
    for piece in pieces {
        let Some((k, v)) = piece.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim().trim_matches('"');
        if let Some(base) = k.strip_suffix('*') {
            let encoded = v.splitn(3, '\'').nth(2).unwrap_or(v);
            params.insert(base.to_owned(), percent_decode(encoded));
        } else {
            params.insert(k, decode_words(v));
        }
    }
    (main, params)
}

fn walk(headers: &[(String, String)], body: &[u8], mail: &mut ParsedMail) {
    let (content_type, params) =
        value_and_params(header(headers, "content-type").unwrap_or("text/plain"));
    mail.content_types.push(content_type.clone());
    if content_type.starts_with("multipart/") {
        let Some(boundary) = params.get("boundary") else {
            return;
        };
        for part in split_multipart(body, boundary) {
            let (sub_headers, sub_body) = split_headers(part);
            walk(&sub_headers, sub_body, mail);
        }
        return;
    }
    let encoding = header(headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64_decode(body),
        "quoted-printable" => qp_decode(body),
        _ => body.to_vec(),
    };
    let (disposition, disposition_params) =
        value_and_params(header(headers, "content-disposition").unwrap_or(""));
    let filename = disposition_params
        .get("filename")
        .or_else(|| params.get("name"))
        .cloned();
    let is_attachment = disposition == "attachment" || filename.is_some();
    if is_attachment {
        mail.attachments.push(ParsedAttachment {
            filename,
            content_type,
            bytes,
        });
        return;
    }
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
    match content_type.as_str() {
        "text/plain" if mail.text.is_none() => mail.text = Some(text),
        "text/html" if mail.html.is_none() => mail.html = Some(text),
        _ => {}
    }
}

/// The parts between `--boundary` lines (the preamble and epilogue dropped).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive(|b| *b == b'\n') {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let is_delimiter = trimmed.starts_with(delimiter.as_bytes())
            && trimmed[delimiter.len()..]
                .iter()
                .all(|b| b.is_ascii_whitespace() || *b == b'-');
        if is_delimiter {
            if let Some(s) = start {
                // The line break before the delimiter belongs to the delimiter.
                let end = if offset > s && body[offset - 1] == b'\n' {
                    offset - 1
                } else {
                    offset
                };
                parts.push(&body[s..end.max(s)]);
            }
            let closing = trimmed[delimiter.len()..].starts_with(b"--");
            if closing {
                return parts;
            }
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    parts
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); whitespace
/// between two encoded words is dropped.
pub fn decode_words(value: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = value;
    let mut pending_space = String::new();
    let mut after_word = false;
    while !rest.is_empty() {
        if let Some(word) = rest.strip_prefix("=?") {
            let mut fields = word.splitn(3, '?');
            let (_charset, encoding, tail) = (fields.next(), fields.next(), fields.next());
            if let (Some(encoding), Some(tail)) = (encoding, tail) {
                if let Some(end) = tail.find("?=") {
                    let payload = &tail[..end];
                    let decoded = match encoding.to_ascii_lowercase().as_str() {
                        "b" => Some(base64_decode(payload.as_bytes())),
                        "q" => Some(qp_decode(payload.replace('_', " ").as_bytes())),
                        _ => None,
                    };
                    if let Some(decoded) = decoded {
                        if !after_word {
                            out.extend_from_slice(pending_space.as_bytes());
                        }
                        pending_space.clear();
                        out.extend_from_slice(&decoded);
                        after_word = true;
                        rest = &tail[end + 2..];
                        continue;
                    }
                }
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        if ch.is_whitespace() {
            pending_space.push(ch);
        } else {
            out.extend_from_slice(pending_space.as_bytes());
            pending_space.clear();
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            after_word = false;
        }
        rest = &rest[ch.len_utf8()..];
    }
    out.extend_from_slice(pending_space.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 (RFC 4648), whitespace ignored, stops at padding.
pub fn base64_decode(input: &[u8]) -> Vec<u8> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in input {
        if c == b'=' {
            break;
        }
        let Some(v) = value(c) else {
            continue;
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Quoted-printable (RFC 2045): `=XX` escapes and `=` soft line breaks.
pub fn qp_decode(input: &[u8]) -> Vec<u8> {
    fn hex(c: u8) -> Option<u8> {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(&a), Some(&b)) => {
                    if let (Some(a), Some(b)) = (hex(a), hex(b)) {
                        out.push(a << 4 | b);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_decode(b"Zm9vYmFy"), b"foobar");
        assert_eq!(base64_decode(b"Zm9vYg=="), b"foob");
        assert_eq!(base64_decode(b"Zm9v\r\nYmE="), b"fooba");
        assert_eq!(base64_decode(b""), b"");
    }

    #[test]
    fn quoted_printable_and_encoded_words() {
        assert_eq!(
            qp_decode(b"caf=C3=A9 =\nau lait"),
            "café au lait".as_bytes()
        );
        assert_eq!(
            decode_words("=?utf-8?b?w4l0w6k=?= =?utf-8?q?_chaud?= !"),
            "Été chaud !"
        );
        assert_eq!(decode_words("plain text"), "plain text");
    }

    #[test]
    fn parses_nested_multiparts() {
        let raw = "Subject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n\
            Content-Type: multipart/mixed; boundary=\"OUT\"\r\n\r\n\
            preamble\r\n--OUT\r\n\
            Content-Type: multipart/alternative;\r\n boundary=IN\r\n\r\n\
            --IN\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nBonjour =C3=89milie\r\n\
            --IN\r\nContent-Type: text/html\r\n\r\n<p>Bonjour</p>\r\n--IN--\r\n\
            --OUT\r\nContent-Type: application/pdf\r\n\
            Content-Disposition: attachment; filename=\"FAC-1.pdf\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--OUT--\r\n";
        let mail = parse_mail(raw.as_bytes());
        assert_eq!(mail.subject, "Résumé");
        assert_eq!(mail.text.as_deref(), Some("Bonjour Émilie"));
        assert_eq!(mail.html.as_deref(), Some("<p>Bonjour</p>"));
        assert_eq!(mail.attachments.len(), 1);
        assert_eq!(mail.attachments[0].filename.as_deref(), Some("FAC-1.pdf"));
        assert_eq!(mail.attachments[0].bytes, b"%PDF-");
        assert_eq!(
            mail.content_types,
            [
                "multipart/mixed",
                "multipart/alternative",
                "text/plain",
                "text/html",
                "application/pdf"
            ]
        );
    }
}
