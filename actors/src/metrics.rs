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

pub fn ack_latency(took: Duration) {
    ::metrics::histogram!("facture_webhook_ack_seconds").record(took.as_secs_f64());
}

pub fn pipeline_latency(took: Duration) {
    ::metrics::histogram!("facture_pipeline_seconds").record(took.as_secs_f64());
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

pub fn webhook_outcome(outcome: &'static str) {
    ::metrics::counter!("facture_webhook_requests_total", "outcome" => outcome).increment(1);
}
