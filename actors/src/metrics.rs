//! What the engine reports through the `metrics` facade (exported as Prometheus text by
//! the HTTP layer). actix exposes no queue length, so mailbox depth is counted here:
//! +1 when a message is sent, -1 when its handler starts.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    WebhookReceiver,
    OrderRegistry,
    Order,
    InvoiceRenderer,
    StorageWriter,
    Mailer,
    NotificationBus,
}

impl ActorKind {
    pub const ALL: [ActorKind; 7] = [
        Self::WebhookReceiver,
        Self::OrderRegistry,
        Self::Order,
        Self::InvoiceRenderer,
        Self::StorageWriter,
        Self::Mailer,
        Self::NotificationBus,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::WebhookReceiver => "webhook_receiver",
            Self::OrderRegistry => "order_registry",
            Self::Order => "order",
            Self::InvoiceRenderer => "invoice_renderer",
            Self::StorageWriter => "storage_writer",
            Self::Mailer => "mailer",
            Self::NotificationBus => "notification_bus",
        }
    }
}

pub fn enqueued(kind: ActorKind) {
    ::metrics::gauge!("facture_mailbox_depth", "actor" => kind.label()).increment(1.0);
}

pub fn dequeued(kind: ActorKind) {
    ::metrics::gauge!("facture_mailbox_depth", "actor" => kind.label()).decrement(1.0);
}

pub fn handled(kind: ActorKind, took: Duration, ok: bool) {
    ::metrics::counter!("facture_messages_handled_total", "actor" => kind.label()).increment(1);
    ::metrics::histogram!("facture_handler_duration_seconds", "actor" => kind.label())
        .record(took.as_secs_f64());
    if !ok {
        ::metrics::counter!("facture_handler_failures_total", "actor" => kind.label()).increment(1);
    }
}

pub fn retried(kind: ActorKind) {
    ::metrics::counter!("facture_retries_total", "actor" => kind.label()).increment(1);
}

pub fn restarted(kind: ActorKind) {
    ::metrics::counter!("facture_actor_restarts_total", "actor" => kind.label()).increment(1);
}

pub fn live_orders(n: usize) {
    ::metrics::gauge!("facture_order_actors_live").set(n as f64);
}

pub fn renders_in_flight(delta: f64) {
    ::metrics::gauge!("facture_renders_in_flight").increment(delta);
}

pub fn render_permits_waiting(delta: f64) {
    ::metrics::gauge!("facture_render_permits_waiting").increment(delta);
}

pub fn batch_size(n: usize) {
    ::metrics::histogram!("facture_webhook_batch_size").record(n as f64);
}

/// One webhook request answered 2xx, from its handler's start (before the body is read) to
/// the answer: what Stripe waits for, less the network and the HTTP parsing.
pub fn ack_latency(took: Duration) {
    ::metrics::histogram!("facture_webhook_ack_seconds").record(took.as_secs_f64());
}

/// One event's durable append, from the WebhookReceiver taking it to its batch's commit:
/// the database's share of [`ack_latency`]. The rest is the hand-offs between the HTTP
/// worker's thread and the receiver's, which on a busy machine wait for a core.
pub fn append_latency(took: Duration) {
    ::metrics::histogram!("facture_webhook_append_seconds").record(took.as_secs_f64());
}

/// One run of an order's pipeline, from its claim to `done` (one process's share of the
/// work). The end-to-end figure, from the event's receipt, is `facture_pipeline_seconds`.
pub fn pipeline_latency(took: Duration) {
    ::metrics::histogram!("facture_pipeline_run_seconds").record(took.as_secs_f64());
}

pub fn invoice_issued() {
    ::metrics::counter!("facture_invoices_issued_total").increment(1);
}

pub fn mail(outcome: &'static str) {
    ::metrics::counter!("facture_mails_total", "outcome" => outcome).increment(1);
}

pub fn dead_lettered(step: &'static str) {
    ::metrics::counter!("facture_steps_dead_lettered_total", "step" => step).increment(1);
}

pub fn parked(step: &'static str) {
    ::metrics::counter!("facture_steps_parked_total", "step" => step).increment(1);
}

pub fn webhook_outcome(outcome: &'static str) {
    ::metrics::counter!("facture_webhook_requests_total", "outcome" => outcome).increment(1);
}

// ---------------------------------------------------------------------------------------
// Exposition support: descriptions, zero-initialisation, capacity and backlog gauges, and
// the end-to-end pipeline latency (event received → customer mail accepted).

/// Outcomes `facture_webhook_requests_total` is recorded with.
pub const WEBHOOK_OUTCOMES: [&str; 8] = [
    "accepted",
    "duplicate",
    "unavailable",
    "payload_too_large",
    "missing_signature",
    "malformed_event",
    "invalid_signature",
    "timestamp_out_of_tolerance",
];

/// Outcomes `facture_mails_total` is recorded with.
pub const MAIL_OUTCOMES: [&str; 2] = ["sent", "failed"];

/// Steps `facture_steps_dead_lettered_total` is recorded with (every step but `done`).
pub const STEPS: [&str; 5] = ["activation", "invoice", "render", "mail", "notify"];

/// Describes every family and registers each label set at zero, so a scrape shows the
/// whole surface before any traffic (alerts and dashboards never see a missing series).
/// Call once, after the recorder is installed.
pub fn describe_all() {
    use ::metrics::{
        counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
    };
    describe_gauge!(
        "facture_mailbox_depth",
        Unit::Count,
        "Messages sent to an actor kind and not yet picked up by a handler."
    );
    describe_gauge!(
        "facture_mailbox_capacity",
        Unit::Count,
        "Bound on one actor's mailbox (renderer: render permits)."
    );
    describe_counter!(
        "facture_messages_handled_total",
        Unit::Count,
        "Messages handled, by actor kind."
    );
    describe_histogram!(
        "facture_handler_duration_seconds",
        Unit::Seconds,
        "Time spent handling one message, by actor kind."
    );
    describe_counter!(
        "facture_handler_failures_total",
        Unit::Count,
        "Handlers that ended in an error, by actor kind."
    );
    describe_counter!(
        "facture_retries_total",
        Unit::Count,
        "Transient failures retried with backoff, by actor kind."
    );
    describe_counter!(
        "facture_actor_restarts_total",
        Unit::Count,
        "Supervisor restarts, by actor kind."
    );
    describe_gauge!(
        "facture_order_actors_live",
        Unit::Count,
        "OrderActors currently running."
    );
    describe_gauge!(
        "facture_renders_in_flight",
        Unit::Count,
        "PDF renders running on the pool now."
    );
    describe_gauge!(
        "facture_render_permits_waiting",
        Unit::Count,
        "OrderActors waiting for a render permit (pool saturated)."
    );
    describe_histogram!(
        "facture_webhook_batch_size",
        Unit::Count,
        "Events sharing one group-commit transaction."
    );
    describe_histogram!(
        "facture_webhook_ack_seconds",
        Unit::Seconds,
        "Webhook request answered 2xx: handler started (before the body is read) → answer ready."
    );
    describe_histogram!(
        "facture_webhook_append_seconds",
        Unit::Seconds,
        "Webhook event taken by the receiver → its group commit durable (the database's share of the ack)."
    );
    describe_histogram!(
        "facture_pipeline_seconds",
        Unit::Seconds,
        "End to end: payment event received (webhook_events.received_at) → invoice mail accepted by the transport."
    );
    describe_histogram!(
        "facture_pipeline_run_seconds",
        Unit::Seconds,
        "One pipeline run, from its claim to done."
    );
    describe_counter!(
        "facture_invoices_issued_total",
        Unit::Count,
        "Invoices numbered and created."
    );
    describe_counter!(
        "facture_mails_total",
        Unit::Count,
        "Mails handed to the transport, by outcome (sent, failed after retries)."
    );
    describe_counter!(
        "facture_steps_dead_lettered_total",
        Unit::Count,
        "Pipeline steps given up after their retries, by step."
    );
    describe_counter!(
        "facture_steps_parked_total",
        Unit::Count,
        "Pipeline steps that failed for an environmental reason (mail server, storage, \
         database) and were parked for a later retry, by step."
    );
    describe_counter!(
        "facture_db_statements_total",
        Unit::Count,
        "Statements sent to the database (BEGIN, COMMIT and PRAGMAs included)."
    );
    describe_histogram!(
        "facture_db_wait_seconds",
        Unit::Seconds,
        "Time spent waiting for a database connection (writer, readers, acks), for SQLite's \
         write turn, or for the WAL's disk sync after an acknowledgement's commit."
    );
    describe_histogram!(
        "facture_db_held_seconds",
        Unit::Seconds,
        "SQLite: how long a connection was held once checked out of its pool (writer: the \
         pipeline's single connection, reads included; readers: the API's)."
    );
    describe_histogram!(
        "facture_db_write_lock_seconds",
        Unit::Seconds,
        "SQLite: how long one write transaction held the write lock, BEGIN to COMMIT, by \
         connection (acks: the durable webhook append; writer: the pipeline's batch)."
    );
    describe_histogram!(
        "facture_db_write_batch_size",
        Unit::Count,
        "SQLite: writes sharing one commit of the writer connection (its group commit)."
    );
    describe_counter!(
        "facture_webhook_requests_total",
        Unit::Count,
        "Webhook requests, by outcome."
    );
    describe_gauge!(
        "facture_unfinished_events",
        Unit::Count,
        "Stored webhook events not processed yet (database)."
    );
    describe_gauge!(
        "facture_unfinished_pipelines",
        Unit::Count,
        "Paid orders whose pipeline has not reached done (database, dead letters included)."
    );
    describe_gauge!(
        "facture_dead_lettered_pipelines",
        Unit::Count,
        "Paid orders stopped at a failed step, waiting for a replay (database)."
    );
    describe_gauge!(
        "facture_oldest_unfinished_event_seconds",
        Unit::Seconds,
        "Age of the oldest unprocessed webhook event (0 when none)."
    );
    describe_gauge!(
        "facture_oldest_unfinished_pipeline_seconds",
        Unit::Seconds,
        "Time since payment of the oldest paid order not fully processed (0 when none)."
    );
    describe_gauge!(
        "facture_backlog_updated_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the last successful backlog measurement."
    );

    for kind in ActorKind::ALL {
        let actor = kind.label();
        let _ = gauge!("facture_mailbox_depth", "actor" => actor);
        let _ = gauge!("facture_mailbox_capacity", "actor" => actor);
        counter!("facture_messages_handled_total", "actor" => actor).increment(0);
        let _ = histogram!("facture_handler_duration_seconds", "actor" => actor);
        counter!("facture_handler_failures_total", "actor" => actor).increment(0);
        counter!("facture_retries_total", "actor" => actor).increment(0);
        counter!("facture_actor_restarts_total", "actor" => actor).increment(0);
    }
    for outcome in WEBHOOK_OUTCOMES {
        counter!("facture_webhook_requests_total", "outcome" => outcome).increment(0);
    }
    for outcome in MAIL_OUTCOMES {
        counter!("facture_mails_total", "outcome" => outcome).increment(0);
    }
    for step in STEPS {
        counter!("facture_steps_dead_lettered_total", "step" => step).increment(0);
        counter!("facture_steps_parked_total", "step" => step).increment(0);
    }
    counter!("facture_invoices_issued_total").increment(0);
    counter!("facture_db_statements_total").increment(0);
    // Waits and lock times are SQLite's story; on PostgreSQL the SQLite-only series stay empty.
    for what in ["writer", "readers", "acks", "write_turn", "wal_sync"] {
        let _ = histogram!("facture_db_wait_seconds", "for" => what);
    }
    for by in ["writer", "acks"] {
        let _ = histogram!("facture_db_write_lock_seconds", "by" => by);
    }
    for pool in ["writer", "readers"] {
        let _ = histogram!("facture_db_held_seconds", "pool" => pool);
    }
    for name in [
        "facture_order_actors_live",
        "facture_renders_in_flight",
        "facture_render_permits_waiting",
        "facture_unfinished_events",
        "facture_unfinished_pipelines",
        "facture_dead_lettered_pipelines",
        "facture_oldest_unfinished_event_seconds",
        "facture_oldest_unfinished_pipeline_seconds",
        "facture_backlog_updated_timestamp_seconds",
    ] {
        let _ = gauge!(name);
    }
    for name in [
        "facture_webhook_batch_size",
        "facture_webhook_ack_seconds",
        "facture_webhook_append_seconds",
        "facture_pipeline_seconds",
        "facture_pipeline_run_seconds",
    ] {
        let _ = histogram!(name);
    }
}

/// The bound on one actor's mailbox (for "mailbox near capacity" alerts).
pub fn mailbox_capacity(kind: ActorKind, capacity: usize) {
    ::metrics::gauge!("facture_mailbox_capacity", "actor" => kind.label()).set(capacity as f64);
}

/// What the database holds unfinished, measured periodically by the HTTP layer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    pub unfinished_events: i64,
    pub unfinished_pipelines: i64,
    pub dead_lettered_pipelines: i64,
    pub oldest_event_secs: f64,
    pub oldest_pipeline_secs: f64,
}

pub fn backlog(b: &Backlog) {
    ::metrics::gauge!("facture_unfinished_events").set(b.unfinished_events as f64);
    ::metrics::gauge!("facture_unfinished_pipelines").set(b.unfinished_pipelines as f64);
    ::metrics::gauge!("facture_dead_lettered_pipelines").set(b.dead_lettered_pipelines as f64);
    ::metrics::gauge!("facture_oldest_unfinished_event_seconds").set(b.oldest_event_secs);
    ::metrics::gauge!("facture_oldest_unfinished_pipeline_seconds").set(b.oldest_pipeline_secs);
    ::metrics::gauge!("facture_backlog_updated_timestamp_seconds")
        .set(chrono::Utc::now().timestamp() as f64);
}

/// When each order's payment event was received, kept from the moment an OrderActor claims
/// the event until the order's customer mail is accepted (then `facture_pipeline_seconds`
/// records the difference). In memory and bounded: an order driven by the sweep after a
/// restart, or by another process, falls back to its `paid_at`.
static RECEIVED: std::sync::Mutex<
    Option<std::collections::HashMap<String, chrono::NaiveDateTime>>,
> = std::sync::Mutex::new(None);

/// Bound on the receipts kept (events that never lead to a mail, e.g. failed payments,
/// are forgotten past it).
const RECEIVED_MAX: usize = 50_000;

/// An OrderActor claimed a stored event (one line in `order_actor::process_event`).
pub fn event_claimed(session_id: Option<&str>, received_at: chrono::NaiveDateTime) {
    let Some(session) = session_id else { return };
    let mut guard = RECEIVED.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(Default::default);
    if map.len() >= RECEIVED_MAX {
        let cutoff = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(10);
        map.retain(|_, t| *t > cutoff);
        if map.len() >= RECEIVED_MAX {
            map.clear();
        }
    }
    // The first event of a session is its payment (a later one is a redelivery or noise).
    map.entry(session.to_owned()).or_insert(received_at);
}

/// A pipeline step was recorded done (one line in `order_actor::run_steps`). After the
/// customer's mail: records the end-to-end latency from the event's receipt.
pub fn step_done(step: &str, order: &facture_core::db::models::Commande) {
    if step != "mail" {
        return;
    }
    let received = order
        .stripe_session_id
        .as_deref()
        .and_then(|s| {
            let mut guard = RECEIVED.lock().unwrap_or_else(|p| p.into_inner());
            guard.as_mut().and_then(|m| m.remove(s))
        })
        .or(order.paid_at);
    if let Some(at) = received {
        let took = chrono::Utc::now().naive_utc() - at;
        let secs = took.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        ::metrics::histogram!("facture_pipeline_seconds").record(secs.max(0.0));
    }
}
