//! Prometheus exposition of what the engine records through the `metrics` facade.
//!
//! One recorder per process ([`install`], idempotent: tests start several applications in
//! one process and they share it), rendered as Prometheus text at `GET /metrics`
//! ([`render`]). Histograms are true Prometheus histograms (fixed buckets), so alerting
//! rules can take quantiles with `histogram_quantile`. Every family and label set is
//! registered at zero when the recorder is installed (see
//! `facture_actors::metrics::describe_all`), and a small periodic task per application
//! ([`backlog_loop`]) measures the database's backlog of unfinished events and pipelines.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use facture_actors::metrics::{self as engine_metrics, ActorKind, Backlog};
use facture_core::config::Settings;
use facture_core::db::schema::{commandes, webhook_events};
use facture_core::db::{Db, DbError};
use facture_core::events::{self, status};
use facture_core::orders::{self, step};
use facture_core::with_conn;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds (seconds) of every `*_seconds` histogram: fine around the webhook's
/// millisecond acknowledgement, coarse up to the minutes a backlog can take.
pub const SECONDS_BUCKETS: [f64; 20] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Bucket bounds of `facture_webhook_batch_size` (events per group commit) and
/// `facture_db_write_batch_size` (pipeline writes per commit).
pub const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How often histogram samples are folded in when nobody scrapes (a scrape does it too).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("facture_webhook_batch_size".into()),
                &BATCH_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("facture_db_write_batch_size".into()),
                &BATCH_BUCKETS,
            )
        })
        .expect("bucket lists are not empty")
}

/// Installs the process-wide Prometheus recorder once and returns its handle (every later
/// call returns the same handle). Also describes and zero-registers every family.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = match builder().install_recorder() {
                Ok(handle) => handle,
                Err(e) => {
                    // Another recorder owns the facade: /metrics stays valid but empty.
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    builder().build_recorder().handle()
                }
            };
            engine_metrics::describe_all();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "metrics upkeep thread not started");
            }
            handle
        })
        .clone()
}

/// The current metrics in Prometheus text format (installs the recorder if needed).
pub fn render() -> String {
    install().render()
}

/// Publishes each mailbox's bound, for "mailbox near capacity" alerts. The renderer pool's
/// queue is bounded by its render permits (twice the pool's threads), as in `Engine::start`.
pub fn record_capacities(settings: &Settings) {
    let cap = settings.engine.mailbox_capacity;
    let threads = if settings.engine.render_pool == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        settings.engine.render_pool
    };
    for kind in ActorKind::ALL {
        let bound = match kind {
            ActorKind::InvoiceRenderer => threads * 2,
            _ => cap,
        };
        engine_metrics::mailbox_capacity(kind, bound);
    }
}

/// Measures what the database holds unfinished: events not processed (those still in
/// SQLite's acknowledgement journal included), pipelines not done (and dead-lettered), and
/// the age of the oldest of each.
pub async fn measure_backlog(db: &Db) -> Result<Backlog, DbError> {
    let unfinished_events =
        events::count_by_status(db, status::RECEIVED).await? + events::count_unimported(db).await?;
    let unfinished_pipelines = orders::count_unfinished_pipelines(db).await?;
    let dead_lettered_pipelines: i64 = with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::pipeline.is_not_null())
            .filter(commandes::pipeline.ne(step::DONE))
            .filter(commandes::pipeline_error.is_not_null())
            .count()
            .get_result(conn)
            .await
    })?;
    let oldest_pipeline: Option<NaiveDateTime> = with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::pipeline.is_not_null())
            .filter(commandes::pipeline.ne(step::DONE))
            .select(diesel::dsl::min(commandes::paid_at))
            .get_result(conn)
            .await
    })?;
    let oldest_event: Option<NaiveDateTime> = with_conn!(db, |conn| {
        webhook_events::table
            .filter(webhook_events::status.eq(status::RECEIVED))
            .select(diesel::dsl::min(webhook_events::received_at))
            .get_result(conn)
            .await
    })?;
    let now = chrono::Utc::now().naive_utc();
    let age = |t: Option<NaiveDateTime>| {
        t.map_or(0.0, |t| {
            ((now - t).num_milliseconds() as f64 / 1000.0).max(0.0)
        })
    };
    Ok(Backlog {
        unfinished_events,
        unfinished_pipelines,
        dead_lettered_pipelines,
        oldest_event_secs: age(oldest_event),
        oldest_pipeline_secs: age(oldest_pipeline),
    })
}

/// Measures the backlog every `every` and publishes it as gauges, until dropped/aborted.
pub async fn backlog_loop(db: Db, every: Duration) {
    let mut tick = actix_web::rt::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match measure_backlog(&db).await {
            Ok(b) => engine_metrics::backlog(&b),
            Err(e) => tracing::debug!(error = %e, "backlog not measured"),
        }
    }
}

/// How often an application measures its backlog: as often as it sweeps, within 1–15 s.
pub fn backlog_period(settings: &Settings) -> Duration {
    Duration::from_secs(settings.engine.sweep_interval_secs.clamp(1, 15))
}

/// What one application runs for its metrics: the backlog task, and the separate /metrics
/// server when `metrics.port` is set.
pub struct Exposition {
    port: Option<u16>,
    server: Option<actix_web::dev::ServerHandle>,
    backlog: actix_web::rt::task::JoinHandle<()>,
}

impl Exposition {
    /// Installs the recorder (once per process), publishes mailbox capacities, starts the
    /// backlog task and, when `metrics.port` is set, binds and starts the /metrics server on
    /// `server.host:metrics.port` (port 0 picks a free one; see [`Exposition::port`]).
    /// Must run inside an actix system.
    pub fn start(settings: &Settings, db: &Db) -> anyhow::Result<Self> {
        install();
        record_capacities(settings);
        let (port, server) = match settings.metrics.port {
            None => (None, None),
            Some(port) => {
                let address = format!("{}:{port}", settings.server.host);
                let listener = std::net::TcpListener::bind(&address)
                    .map_err(|e| anyhow::anyhow!("binding the metrics port {address}: {e}"))?;
                let port = listener.local_addr()?.port();
                let server = actix_web::HttpServer::new(|| {
                    actix_web::App::new()
                        .configure(|cfg| crate::routes::metrics::configure(cfg, true))
                        .default_service(actix_web::web::to(crate::routes::not_found))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)?
                .run();
                let handle = server.handle();
                actix_web::rt::spawn(server);
                tracing::info!(%address, port, "metrics listening");
                (Some(port), Some(handle))
            }
        };
        let backlog = actix_web::rt::spawn(backlog_loop(db.clone(), backlog_period(settings)));
        Ok(Self {
            port,
            server,
            backlog,
        })
    }

    /// The separate metrics port, when /metrics is not served on the API port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether the API server mounts /metrics itself.
    pub fn on_api_port(&self) -> bool {
        self.port.is_none()
    }

    /// Stops the metrics server and the backlog task (after the API server stopped).
    pub async fn stop(self) {
        self.backlog.abort();
        if let Some(server) = self.server {
            server.stop(true).await;
        }
    }
}
