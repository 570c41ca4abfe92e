//! `facture loadgen`: a load generator made of real payments.
//!
//! 1. Creates `--orders` customer orders (or guest checkouts with `--guest`) in the
//!    configured database, through the same code as checkout (`orders::create_order` /
//!    `orders::create_pending_order`), so every event it sends pays a real order.
//! 2. Posts one signed `checkout.session.completed` per order (each `--duplicates` times,
//!    `--shuffle`d or not) to `/payments/webhook`, at `--rate` events/s or `--burst`, with at
//!    most `--concurrency` requests in flight over a pooled awc client (one thread).
//! 3. Watches the database until every order's pipeline is done, then reports: ack latency
//!    (client side, request sent → response read) p50/p90/p99/max, achieved rate, errors by
//!    status, the time until the last invoice was mailed, and end-to-end latency.
//!
//! End to end is measured from the database, per order: `webhook_events.received_at` of its
//! first event (the server's clock at receipt) → `order_steps.finished_at` of its `mail`
//! step (the customer's invoice mail accepted by the transport). It is the same span as the
//! `facture_pipeline_seconds` histogram.
//!
//! Orders of one run share a title (`loadgen <run id>`), which is how the run finds its
//! orders again; run it against a database you don't mind filling.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use facture_core::config::Settings;
use facture_core::db::schema::{commandes, order_steps, webhook_events};
use facture_core::db::{Db, DbError};
use facture_core::orders::{self, step, NewOrder, NewPendingOrder};
use facture_core::stripe::sign;
use facture_core::with_conn;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::simulate_payment::completed_event;
use crate::cli::LoadgenArgs;

/// Largest IN (...) list sent in one query (both engines accept far more).
const CHUNK: usize = 500;

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub run: String,
    pub orders: u64,
    pub guest: bool,
    pub deliveries: u64,
    pub duplicates: u64,
    pub concurrency: u64,
    /// Requested events/s (None: burst).
    pub target_rate: Option<f64>,
    pub achieved_rate: f64,
    pub send_secs: f64,
    pub ack_ms: Percentiles,
    /// Answers by status ("200", "503", "error: timeout"...).
    pub statuses: BTreeMap<String, u64>,
    pub errors: u64,
    /// Orders whose pipeline is done.
    pub invoiced: u64,
    /// Orders stopped at a failed step (dead letters).
    pub dead_lettered: u64,
    /// First delivery sent → last invoice mail accepted.
    pub drain_secs: Option<f64>,
    /// Paid orders per second, end to end (orders / drain_secs).
    pub orders_per_sec: Option<f64>,
    pub end_to_end_ms: Percentiles,
}

#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// From samples in microseconds, reported in milliseconds.
    fn of_micros(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        let at = |p: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            count: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

pub async fn run(mut settings: Settings, args: LoadgenArgs) -> anyhow::Result<()> {
    let valid_rate = args.rate.is_finite() && args.rate > 0.0;
    if !args.burst && !valid_rate {
        anyhow::bail!("--rate: expected a positive number of events per second");
    }
    settings.ensure_secrets()?;
    let secret = match args.secret.clone() {
        Some(s) => s,
        None => settings
            .stripe
            .webhook_secrets
            .as_slice()
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no webhook secret configured: pass --secret"))?,
    };
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", settings.server.host, settings.server.port));
    let endpoint = format!("{}/payments/webhook", base.trim_end_matches('/'));

    let url = settings.database_url()?;
    facture_core::db::run_migrations(&url, settings.database.busy_timeout_ms).await?;
    let db = Db::connect(&url, 8, settings.database.busy_timeout_ms).await?;

    let run_id = facture_core::random_hex(6);
    let tag = format!("loadgen {run_id}");
    let orders = create_orders(&db, &args, &run_id, &tag).await?;

    // One body per order, signed at send time (the signature carries a timestamp).
    let created = chrono::Utc::now().timestamp();
    let bodies: Vec<Bytes> = orders
        .iter()
        .enumerate()
        .map(|(i, (session, amount))| {
            Bytes::from(completed_event(
                &format!("evt_lg{run_id}_{i:07}"),
                session,
                *amount,
                created,
            ))
        })
        .collect();
    let mut plan: Vec<u32> = Vec::with_capacity(bodies.len() * args.duplicates as usize);
    for _ in 0..args.duplicates {
        plan.extend(0..bodies.len() as u32);
    }
    if args.shuffle {
        shuffle(&mut plan);
    }

    let started_wall = chrono::Utc::now().naive_utc();
    let sent = send_all(&endpoint, &secret, &args, bodies, plan).await;
    let achieved = sent.latencies.len() as f64 / sent.elapsed.as_secs_f64().max(1e-9);

    let (invoiced, dead_lettered) =
        wait_for_invoices(&db, &tag, args.orders, args.wait_secs).await?;
    let (e2e, last_mail) = end_to_end(&db, &tag).await?;
    let drain_secs = (invoiced == args.orders)
        .then(|| last_mail.map(|t| (t - started_wall).num_milliseconds() as f64 / 1000.0))
        .flatten();
    let errors = sent
        .statuses
        .iter()
        .filter(|(k, _)| k.as_str() != "200")
        .map(|(_, v)| *v)
        .sum();
    let report = Report {
        run: run_id,
        orders: args.orders,
        guest: args.guest,
        deliveries: sent.latencies.len() as u64,
        duplicates: args.duplicates,
        concurrency: args.concurrency,
        target_rate: (!args.burst).then_some(args.rate),
        achieved_rate: achieved,
        send_secs: sent.elapsed.as_secs_f64(),
        ack_ms: Percentiles::of_micros(sent.latencies),
        statuses: sent.statuses,
        errors,
        invoiced,
        dead_lettered,
        drain_secs,
        orders_per_sec: drain_secs.map(|s| args.orders as f64 / s.max(1e-9)),
        end_to_end_ms: Percentiles::of_micros(e2e),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if report.invoiced < report.orders {
        anyhow::bail!(
            "{} of {} orders were not invoiced and mailed in time",
            report.orders - report.invoiced,
            report.orders
        );
    }
    Ok(())
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>9} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Creates the orders; returns (session id, amount) for each.
async fn create_orders(
    db: &Db,
    args: &LoadgenArgs,
    run_id: &str,
    tag: &str,
) -> anyhow::Result<Vec<(String, i64)>> {
    let progress = bar(args.orders, "orders");
    let guest = args.guest;
    let results: Vec<Result<(String, i64), DbError>> = futures_util::stream::iter(0..args.orders)
        .map(|i| {
            let session = format!("cs_test_lg{run_id}_{i:07}");
            let amount = 1_000 + (i as i64 % 50) * 500;
            let email = format!("loadgen+{run_id}.{i}@example.fr");
            let progress = progress.clone();
            async move {
                if guest {
                    orders::create_pending_order(
                        db,
                        &NewPendingOrder {
                            prenom: "Client".into(),
                            nom: format!("Charge {i}"),
                            email,
                            telephone: None,
                            adresse: Some("1 rue de la Paix\n75002 Paris".into()),
                            titre: tag.to_owned(),
                            description: "Commande de test de charge".into(),
                            amount_cents: amount,
                            nombre_pages: None,
                            session_id: session.clone(),
                        },
                    )
                    .await?;
                } else {
                    orders::create_order(
                        db,
                        &NewOrder {
                            email,
                            prenom: "Client".into(),
                            nom: format!("Charge {i}"),
                            titre: tag.to_owned(),
                            description: "Commande de test de charge".into(),
                            amount_cents: amount,
                            session_id: session.clone(),
                        },
                    )
                    .await?;
                }
                progress.inc(1);
                Ok((session, amount))
            }
        })
        .buffered(8)
        .collect()
        .await;
    progress.finish_and_clear();
    Ok(results.into_iter().collect::<Result<_, _>>()?)
}

struct Sent {
    latencies: Vec<u64>,
    statuses: BTreeMap<String, u64>,
    elapsed: Duration,
}

/// Delivers `plan` (indexes into `bodies`) with `concurrency` workers sharing one pooled
/// client, paced at `rate` unless `burst`.
async fn send_all(
    endpoint: &str,
    secret: &str,
    args: &LoadgenArgs,
    bodies: Vec<Bytes>,
    plan: Vec<u32>,
) -> Sent {
    let total = plan.len();
    let concurrency = args.concurrency as usize;
    let client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .limit(concurrency)
                .timeout(Duration::from_secs(5)),
        )
        .timeout(Duration::from_secs(30))
        .disable_redirects()
        .finish();
    let progress = bar(total as u64, "events");
    let interval = (!args.burst).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let next = Rc::new(RefCell::new(0usize));
    let latencies = Rc::new(RefCell::new(Vec::with_capacity(total)));
    let statuses: Rc<RefCell<HashMap<String, u64>>> = Rc::default();
    let start = Instant::now();
    let workers = (0..concurrency.min(total.max(1))).map(|_| {
        let (client, next, latencies, statuses, progress) = (
            client.clone(),
            next.clone(),
            latencies.clone(),
            statuses.clone(),
            progress.clone(),
        );
        let (bodies, plan) = (&bodies, &plan);
        async move {
            loop {
                let i = {
                    let mut n = next.borrow_mut();
                    if *n >= total {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                if let Some(every) = interval {
                    let due = start + every.mul_f64(i as f64);
                    if due > Instant::now() {
                        actix_web::rt::time::sleep_until(due.into()).await;
                    }
                }
                let body = bodies[plan[i] as usize].clone();
                let signature = sign(&body, secret, chrono::Utc::now().timestamp());
                let sent_at = Instant::now();
                let outcome = client
                    .post(endpoint)
                    .insert_header(("Content-Type", "application/json"))
                    .insert_header(("Stripe-Signature", signature))
                    .send_body(body)
                    .await;
                let key = match outcome {
                    Ok(mut res) => {
                        // Read the answer so the connection goes back to the pool.
                        let _ = res.body().await;
                        res.status().as_u16().to_string()
                    }
                    Err(e) => format!("error: {e}"),
                };
                latencies
                    .borrow_mut()
                    .push(sent_at.elapsed().as_micros() as u64);
                *statuses.borrow_mut().entry(key).or_default() += 1;
                progress.inc(1);
            }
        }
    });
    futures_util::future::join_all(workers).await;
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    let latencies = std::mem::take(&mut *latencies.borrow_mut());
    let statuses = statuses.borrow().clone().into_iter().collect();
    Sent {
        latencies,
        statuses,
        elapsed,
    }
}

/// Polls the database until every order of the run is done (or dead-lettered, or the wait
/// runs out). Returns (done, dead-lettered).
async fn wait_for_invoices(
    db: &Db,
    tag: &str,
    orders: u64,
    wait_secs: u64,
) -> anyhow::Result<(u64, u64)> {
    let progress = bar(orders, "invoiced");
    let deadline = Instant::now() + Duration::from_secs(wait_secs);
    loop {
        let done: i64 = with_conn!(db, |conn| {
            commandes::table
                .filter(commandes::titre.eq(tag))
                .filter(commandes::pipeline.eq(step::DONE))
                .count()
                .get_result(conn)
                .await
        })?;
        let dead: i64 = with_conn!(db, |conn| {
            commandes::table
                .filter(commandes::titre.eq(tag))
                .filter(commandes::pipeline_error.is_not_null())
                .count()
                .get_result(conn)
                .await
        })?;
        let (done, dead) = (done as u64, dead as u64);
        progress.set_position(done);
        if done + dead >= orders || Instant::now() >= deadline {
            progress.finish_and_clear();
            return Ok((done, dead));
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Per order: first event received → customer mail step finished, in microseconds; and
/// the last mail's time.
async fn end_to_end(db: &Db, tag: &str) -> anyhow::Result<(Vec<u64>, Option<NaiveDateTime>)> {
    let ours: Vec<(String, Option<String>)> = with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::titre.eq(tag))
            .select((commandes::id, commandes::stripe_session_id))
            .load(conn)
            .await
    })?;
    let mut samples = Vec::with_capacity(ours.len());
    let mut last = None::<NaiveDateTime>;
    for chunk in ours.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let sessions: Vec<&str> = chunk.iter().filter_map(|(_, s)| s.as_deref()).collect();
        let received: Vec<(Option<String>, NaiveDateTime)> = with_conn!(db, |conn| {
            webhook_events::table
                .filter(webhook_events::session_id.eq_any(&sessions))
                .select((webhook_events::session_id, webhook_events::received_at))
                .load(conn)
                .await
        })?;
        let mailed: Vec<(String, Option<NaiveDateTime>)> = with_conn!(db, |conn| {
            order_steps::table
                .filter(order_steps::commande_id.eq_any(&ids))
                .filter(order_steps::step.eq(step::MAIL))
                .filter(order_steps::status.eq("done"))
                .select((order_steps::commande_id, order_steps::finished_at))
                .load(conn)
                .await
        })?;
        let mut first: HashMap<String, NaiveDateTime> = HashMap::new();
        for (session, at) in received {
            if let Some(s) = session {
                first
                    .entry(s)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
        }
        let session_of: HashMap<&str, &str> = chunk
            .iter()
            .filter_map(|(id, s)| s.as_deref().map(|s| (id.as_str(), s)))
            .collect();
        for (id, finished) in mailed {
            let Some(finished) = finished else { continue };
            last = Some(last.map_or(finished, |l| l.max(finished)));
            if let Some(received) = session_of.get(id.as_str()).and_then(|s| first.get(*s)) {
                let micros = (finished - *received).num_microseconds().unwrap_or(0);
                samples.push(micros.max(0) as u64);
            }
        }
    }
    Ok((samples, last))
}

/// Fisher–Yates with a small xorshift generator seeded from the clock (no need for a
/// cryptographic or reproducible order).
fn shuffle(items: &mut [u32]) {
    let mut state = chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap_or(0x2545_F491_4F6C_DD1D) as u64
        | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn print_report(r: &Report) {
    let kind = if r.guest { "guest checkouts" } else { "orders" };
    println!("loadgen run {}: {} {kind}", r.run, r.orders);
    let target = r
        .target_rate
        .map_or_else(|| "burst".to_owned(), |t| format!("{t:.0}/s"));
    println!(
        "deliveries  {} ({}x each), concurrency {}, target {target}, achieved {:.0}/s over {:.2}s",
        r.deliveries, r.duplicates, r.concurrency, r.achieved_rate, r.send_secs
    );
    println!(
        "ack         p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        r.ack_ms.p50, r.ack_ms.p90, r.ack_ms.p99, r.ack_ms.max
    );
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("answers     {} (errors: {})", statuses.join(", "), r.errors);
    println!(
        "invoiced    {}/{} mailed, {} dead-lettered",
        r.invoiced, r.orders, r.dead_lettered
    );
    match (r.drain_secs, r.orders_per_sec) {
        (Some(d), Some(ops)) => println!(
            "drain       last invoice mailed {d:.2}s after the first delivery: {ops:.0} paid orders/s"
        ),
        _ => println!("drain       not every invoice was mailed"),
    }
    println!(
        "end to end  (event received → invoice mail accepted) p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        r.end_to_end_ms.p50, r.end_to_end_ms.p99, r.end_to_end_ms.max
    );
}
