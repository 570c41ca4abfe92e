//! A real facture process for the campaign tests (crashes in `faults`, injected faults in
//! `campaign`): the binary Cargo built (`CARGO_BIN_EXE_facture`), configured only through
//! `FACTURE__…` variables, started, killed with SIGKILL and restarted at will. Also what
//! those tests share: orders waiting for payment, Stripe-like delivery of signed events,
//! a reading of `/metrics`, the process's peak memory, and the final audit (nothing lost,
//! one invoice per paid order, gapless numbers, PDFs intact, every customer mailed).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facture_core::db::Db;
use facture_core::orders::{self, step, NewOrder};
use facture_core::storage::sha256_hex;
use facture_core::testkit::db::TestDb;
use facture_core::testkit::smtp::SmtpSink;
use facture_core::{events, invoices};

use crate::helpers::SECRETS;
use crate::stripe::{completed, evt, session, signed};

/// One facture process (at most one alive at a time), and how to start it again.
pub struct Facture {
    child: Option<Child>,
    pub port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
}

impl Facture {
    /// A process on a free port, on `database_url`, with everything else under `dir`
    /// (storage root `dir/uploads`, data `dir/data`, its log `dir/facture.log`), mail to
    /// `smtp_url`, and recovery fast enough for a test (1 s sweeps, 2 s leases). Not
    /// started yet: adjust it with [`Facture::set`], then [`Facture::start`].
    pub fn new(database_url: &str, dir: &Path, smtp_url: &str) -> Self {
        let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
        let port = free_port();
        let env = [
            ("SERVER__PORT", port.to_string()),
            ("DATABASE__URL", database_url.to_owned()),
            ("STORAGE__ROOT", path("uploads")),
            ("APP__DATA_DIR", path("data")),
            ("STRIPE__WEBHOOK_SECRETS", SECRETS.join(",")),
            ("AUTH__JWT_SECRET", "campaign-secret-0123456789".into()),
            ("MAIL__TRANSPORT", "smtp".into()),
            ("MAIL__SMTP_URL", smtp_url.to_owned()),
            ("MAIL__RETRY_INITIAL_MS", "20".into()),
            ("ENGINE__SWEEP_INTERVAL_SECS", "1".into()),
            ("ENGINE__LEASE_SECS", "2".into()),
            ("ENGINE__RETRY_INITIAL_MS", "20".into()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("FACTURE__{k}"), v))
        .collect();
        Facture {
            child: None,
            port,
            env,
            log: dir.join("facture.log"),
        }
    }

    /// Sets (or replaces) `FACTURE__{key}` for the next start, e.g. `set("ENGINE__MAX_ATTEMPTS", 3)`.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        let key = format!("FACTURE__{key}");
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_string()));
        self
    }

    /// Spawns the binary with this configuration only (the test's own `FACTURE__…`
    /// variables are not inherited); warnings and errors go to the log file
    /// (`FACTURE_CAMPAIGN_LOG=info`, or any `FACTURE_LOG` filter, logs more).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "facture is already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_facture"));
        for (key, _) in std::env::vars() {
            if key.starts_with("FACTURE__") {
                cmd.env_remove(key);
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("facture log file");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "FACTURE_LOG",
                std::env::var("FACTURE_CAMPAIGN_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("facture starts"));
    }

    /// Starts the process and waits until it is ready.
    pub async fn start_ready(&mut self, client: &awc::Client) {
        self.start();
        self.wait_ready(client).await;
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The last `lines` lines the process logged (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits (up to a minute) until `/ready` answers 200: database reachable, migrated.
    pub async fn wait_ready(&self, client: &awc::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(res) = client.get(self.url("/ready")).send().await {
                if res.status().is_success() {
                    return;
                }
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("facture did not become ready\n{}", self.log_tail(20));
    }

    /// POSTs one signed event body as Stripe would: the status, or the transport error.
    pub async fn deliver(&self, client: &awc::Client, body: &[u8]) -> Result<u16, String> {
        client
            .post(self.url("/payments/webhook"))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Stripe-Signature", signed(body)))
            .send_body(body.to_vec())
            .await
            .map(|res| res.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// Delivers every body, `concurrency` at a time; the answers in the same order.
    pub async fn deliver_all(
        &self,
        client: &awc::Client,
        bodies: &[&[u8]],
        concurrency: usize,
    ) -> Vec<Result<u16, String>> {
        let mut answers = Vec::with_capacity(bodies.len());
        for chunk in bodies.chunks(concurrency.max(1)) {
            let batch = chunk.iter().map(|body| self.deliver(client, body));
            answers.extend(futures_util::future::join_all(batch).await);
        }
        answers
    }

    /// One scrape of `/metrics`.
    pub async fn metrics(&self, client: &awc::Client) -> Metrics {
        let mut res = client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert!(res.status().is_success(), "/metrics: {}", res.status());
        let body = res.body().limit(16 << 20).await.expect("/metrics body");
        Metrics(String::from_utf8_lossy(&body).into_owned())
    }

    /// The process's peak resident set size (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Facture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on (free when this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Prometheus text of one scrape.
pub struct Metrics(pub String);

impl Metrics {
    /// The sum of the samples of `name` whose labels include every `labels` pair
    /// (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, label_text) = match series.split_once('{') {
                    Some((m, rest)) => (m, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                if metric != name {
                    return None;
                }
                let wanted = labels
                    .iter()
                    .all(|(k, v)| label_text.split(',').any(|p| p == format!("{k}=\"{v}\"")));
                wanted.then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }
}

/// A tiny deterministic generator (campaigns print their seed to be replayable).
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `FACTURE_SEED`, or from the clock.
    pub fn from_env() -> Self {
        let seed = std::env::var("FACTURE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64 | 1);
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `FACTURE_HEAVY=1`: the heavy variants.
pub fn heavy() -> bool {
    std::env::var("FACTURE_HEAVY").is_ok_and(|v| v == "1")
}

/// An order waiting for its payment, and the event that pays it.
pub struct Order {
    pub commande_id: String,
    pub amount_cents: i64,
    pub email: String,
    pub event_id: String,
    pub event: Vec<u8>,
}

/// `n` customers' orders waiting for payment (`{tag}{i}@example.fr`), each with its
/// signed-to-be `checkout.session.completed`.
pub async fn make_orders(db: &Db, n: usize, tag: &str) -> Vec<Order> {
    let mut made = Vec::with_capacity(n);
    for i in 0..n {
        let amount_cents = 1_000 + i as i64;
        let email = format!("{tag}{i}@example.fr");
        let o = orders::create_order(
            db,
            &NewOrder {
                email: email.clone(),
                prenom: "Client".into(),
                nom: format!("N°{i}"),
                titre: "Correction".into(),
                description: "Campagne de pannes".into(),
                amount_cents,
                session_id: session(),
            },
        )
        .await
        .unwrap();
        let event_id = evt();
        let event = completed(&event_id, &o.stripe_session_id.unwrap(), amount_cents);
        made.push(Order {
            commande_id: o.id,
            amount_cents,
            email,
            event_id,
            event,
        });
    }
    made
}

/// Events not yet processed (imported or not) plus pipelines not `done` (dead-lettered
/// ones included).
pub async fn unfinished(db: &Db) -> i64 {
    orders::count_unfinished_pipelines(db).await.unwrap()
        + events::count_by_status(db, events::status::RECEIVED)
            .await
            .unwrap()
        + events::count_unimported(db).await.unwrap()
}

/// Polls `check` every 100 ms until it returns Some; fails after `timeout`, naming `what`
/// (with the end of the process's log when there is one).
pub async fn until<T, Fut>(
    what: &str,
    timeout: Duration,
    log: Option<&Facture>,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            log.map(|f| f.log_tail(20)).unwrap_or_default()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until nothing is unfinished; fails after `timeout` with `context`.
pub async fn wait_finished(db: &Db, timeout: Duration, context: &str) {
    let what = format!("every event and pipeline to finish ({context})");
    until(&what, timeout, None, || async {
        (unfinished(db).await == 0).then_some(())
    })
    .await
}

/// Waits until every address in `emails` has received at least one message.
pub async fn wait_mailed(smtp: &SmtpSink, emails: &[String], timeout: Duration, context: &str) {
    let what = format!("every customer to receive a mail ({context})");
    until(&what, timeout, None, || async {
        let received: BTreeSet<String> = smtp
            .messages()
            .into_iter()
            .flat_map(|m| m.recipients)
            .collect();
        emails.iter().all(|e| received.contains(e)).then_some(())
    })
    .await
}

/// What a campaign runs on: a fresh database, a temporary folder, and `n` orders
/// waiting for payment.
pub struct Rig {
    pub test_db: TestDb,
    pub db: Db,
    pub dir: tempfile::TempDir,
    pub made: Vec<Order>,
}

impl Rig {
    pub async fn new(n: usize, tag: &str) -> Rig {
        let test_db = TestDb::new();
        let db = test_db.connect().await;
        let dir = tempfile::tempdir().unwrap();
        let made = make_orders(&db, n, tag).await;
        Rig {
            test_db,
            db,
            dir,
            made,
        }
    }

    /// A process on this rig's database and folder (see [`Facture::new`]).
    pub fn facture(&self, smtp_url: &str) -> Facture {
        Facture::new(self.test_db.url(), self.dir.path(), smtp_url)
    }

    /// The storage root the processes write invoices under.
    pub fn uploads(&self) -> PathBuf {
        self.dir.path().join("uploads")
    }

    /// Waits until nothing is unfinished and every customer has had a mail (each within
    /// `timeout`).
    pub async fn wait_done(&self, smtp: &SmtpSink, timeout: Duration, context: &str) {
        wait_finished(&self.db, timeout, context).await;
        let emails: Vec<String> = self.made.iter().map(|o| o.email.clone()).collect();
        wait_mailed(smtp, &emails, timeout, context).await;
    }

    /// Checks the end state (see [`audit`]).
    pub async fn audit(&self, smtp: &SmtpSink, context: &str) -> Audit {
        audit(&self.db, &self.uploads(), &self.made, smtp, context).await
    }
}

/// What the final audit found.
pub struct Audit {
    /// Customer mails beyond the first per customer (mail is at least once).
    pub duplicate_mails: usize,
    /// Of those, how many repeat a Message-ID already received: the same delivery sent
    /// again (a crash between the server's acceptance and the delivery marked sent).
    pub resent_deliveries: usize,
}

impl std::fmt::Display for Audit {
    /// `duplicate customer mails N (M re-sends of one delivery)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "duplicate customer mails {} ({} re-sends of one delivery)",
            self.duplicate_mails, self.resent_deliveries
        )
    }
}

/// The end state every campaign must reach: each order's one event processed; each order
/// paid, pipeline `done`, exactly one invoice for its amount; numbers 1..=n without a gap;
/// every PDF on disk under `storage_root` matching its SHA-256, no temporary file left;
/// every customer mailed at least once (duplicates counted).
pub async fn audit(
    db: &Db,
    storage_root: &Path,
    made: &[Order],
    smtp: &SmtpSink,
    context: &str,
) -> Audit {
    let n = made.len();
    assert_eq!(
        events::count_all(db).await.unwrap(),
        n as i64,
        "one stored event per payment ({context})"
    );
    assert_eq!(
        events::count_by_status(db, events::status::PROCESSED)
            .await
            .unwrap(),
        n as i64,
        "every event processed ({context})"
    );
    let mut sequences = BTreeSet::new();
    // Customer address → (invoice number, PDF bytes).
    let mut emails: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    for o in made {
        let order = orders::find(db, &o.commande_id).await.unwrap().unwrap();
        assert_eq!(order.payment_status, "paid", "{context}");
        assert_eq!(
            (order.pipeline.as_deref(), order.pipeline_error.as_deref()),
            (Some(step::DONE), None),
            "order {} pipeline ({context})",
            o.commande_id
        );
        let invoice = invoices::find_by_commande(db, &o.commande_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(invoice.amount_cents, o.amount_cents, "{context}");
        assert!(
            sequences.insert(invoice.sequence),
            "number issued twice ({context})"
        );
        let file = storage_root.join(invoice.pdf_path.as_deref().unwrap());
        let bytes = std::fs::read(&file).expect("PDF on disk");
        assert_eq!(
            invoice.pdf_sha256.as_deref(),
            Some(sha256_hex(&bytes).as_str()),
            "PDF matches its SHA-256 ({context})"
        );
        let user = orders::find_user(db, &order.user_id)
            .await
            .unwrap()
            .unwrap();
        emails.insert(user.email, (invoice.number, bytes));
    }
    assert_eq!(
        sequences,
        (1..=n as i64).collect::<BTreeSet<_>>(),
        "gapless ({context})"
    );
    let leftovers: Vec<String> = std::fs::read_dir(storage_root.join("invoices"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".pdf") || name.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary or partial file left behind: {leftovers:?} ({context})"
    );

    // Mail at least once: every customer has a mail carrying their invoice (the PDF on
    // disk, byte for byte); duplicates are counted.
    let mut received: HashMap<String, usize> = HashMap::new();
    let mut with_invoice: BTreeSet<String> = BTreeSet::new();
    let mut message_ids: BTreeSet<(String, String)> = BTreeSet::new();
    let mut resent_deliveries = 0;
    for m in smtp.messages() {
        for r in &m.recipients {
            *received.entry(r.clone()).or_default() += 1;
        }
        let [to] = m.recipients.as_slice() else {
            continue;
        };
        let Some((number, pdf)) = emails.get(to) else {
            continue;
        };
        let parsed = m.parse();
        let id = parsed.header("Message-ID").unwrap_or_default().to_owned();
        if !message_ids.insert((to.clone(), id)) {
            resent_deliveries += 1;
        }
        let carries = parsed.attachments.iter().any(|a| {
            a.filename
                .as_deref()
                .is_some_and(|f| f.contains(number.as_str()))
                && a.bytes == *pdf
        });
        if carries {
            with_invoice.insert(to.clone());
        }
    }
    let missing: Vec<_> = emails
        .keys()
        .filter(|e| !with_invoice.contains(e.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "customers without their invoice: {missing:?} ({context})"
    );
    let duplicate_mails = emails
        .keys()
        .map(|e| received[e.as_str()].saturating_sub(1))
        .sum();
    Audit {
        duplicate_mails,
        resent_deliveries,
    }
}
