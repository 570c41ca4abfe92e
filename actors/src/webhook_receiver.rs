//! WebhookReceiver: the durable append behind every acknowledgement, batched.
//!
//! Group commit: while one batch is being committed, new events wait in a buffer; when the
//! commit ends, everything that arrived meanwhile goes out in the next single transaction.
//! At low load a batch is one event (no added latency); under load the cost of a commit is
//! shared by every request waiting on it. Each caller gets its answer only after the
//! transaction holding its event has committed.
//!
//! On SQLite the events are committed to the acknowledgement journal, a file whose lock
//! nothing else takes (`facture_core::db::ack_journal`); the OrderRegistry is then asked to
//! import them into the main file. On PostgreSQL they go to `webhook_events`, and each
//! accepted event is handed to the OrderRegistry. Both with `try_send`: if its mailbox is
//! full, the recovery sweep finds the events.

use std::time::Instant;

use actix::prelude::*;
use facture_core::db::Db;
use facture_core::events::{self, Appended, NewEvent};
use facture_core::stripe::{self, SignatureError, StripeEvent};
use tokio::sync::oneshot;

use crate::error::EngineError;
use crate::messages::{AppendEvent, ImportAcknowledged, ProcessEvent};
use crate::metrics::{self, ActorKind};
use crate::order_registry::OrderRegistry;

/// Why a webhook request is refused before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    MalformedEvent(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MissingSignature => "missing_signature",
            Refusal::Signature(e) => e.code(),
            Refusal::MalformedEvent(_) => "malformed_event",
        }
    }
}

/// Verifies a webhook request and decodes its event. Pure CPU work, run by the HTTP
/// worker that received the request so the receiver actor only does the append.
pub fn verify_request(
    signature: Option<&str>,
    body: &[u8],
    secrets: &[String],
    tolerance_secs: u64,
    now: i64,
) -> Result<(StripeEvent, NewEvent), Refusal> {
    let header = signature.ok_or(Refusal::MissingSignature)?;
    stripe::verify(header, body, secrets, tolerance_secs, now)?;
    let event = stripe::decode_event(body).map_err(|e| Refusal::MalformedEvent(e.to_string()))?;
    // The body decoded as JSON, so it is UTF-8.
    let payload = String::from_utf8_lossy(body).into_owned();
    let new = NewEvent {
        stripe_event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        payload,
        session_id: event.session_id().map(str::to_owned),
    };
    Ok((event, new))
}

type Waiter = oneshot::Sender<Result<Appended, EngineError>>;

pub struct WebhookReceiver {
    db: Db,
    registry: Addr<OrderRegistry>,
    buffer: Vec<(NewEvent, Waiter, Instant)>,
    committing: bool,
    max_batch: usize,
    mailbox_capacity: usize,
    /// Fault injection (`engine.append_delay_ms`): added to every commit, on this thread.
    commit_delay: std::time::Duration,
}

impl WebhookReceiver {
    pub fn new(
        db: Db,
        registry: Addr<OrderRegistry>,
        max_batch: usize,
        mailbox_capacity: usize,
    ) -> Self {
        Self {
            db,
            registry,
            buffer: Vec::new(),
            committing: false,
            max_batch,
            mailbox_capacity,
            commit_delay: std::time::Duration::ZERO,
        }
    }

    /// Makes every commit hold the receiver's thread `delay` longer, as a slow disk's sync
    /// would (`engine.append_delay_ms`, for tests and drills).
    pub fn with_commit_delay(mut self, delay: std::time::Duration) -> Self {
        self.commit_delay = delay;
        self
    }

    /// Starts the next batch unless one is being committed. The batch is formed after one
    /// yield of the receiver's thread: the events that reached the mailbox while the last
    /// commit ran on this thread are handled first, and join this batch instead of waiting
    /// for the next one.
    fn commit_next_batch(&mut self, ctx: &mut Context<Self>) {
        if self.committing || self.buffer.is_empty() {
            return;
        }
        self.committing = true;
        ctx.spawn(
            tokio::task::yield_now()
                .into_actor(self)
                .map(|(), act, ctx| act.commit_buffered(ctx)),
        );
    }

    /// Commits the buffered events (up to `max_batch` of them) in one transaction, answers
    /// each one's caller, then starts the next batch.
    fn commit_buffered(&mut self, ctx: &mut Context<Self>) {
        if self.buffer.is_empty() {
            self.committing = false;
            return;
        }
        let take = self.buffer.len().min(self.max_batch);
        let batch: Vec<_> = self.buffer.drain(..take).collect();
        let db = self.db.clone();
        let events: Vec<NewEvent> = batch.iter().map(|(e, _, _)| e.clone()).collect();
        metrics::batch_size(events.len());
        let started = Instant::now();
        let delay = self.commit_delay;
        let commit = async move {
            let result = events::append_batch(&db, &events).await;
            if !delay.is_zero() {
                // Blocks on purpose: a real commit's WAL sync blocks this thread too.
                std::thread::sleep(delay);
            }
            result
        };
        ctx.spawn(commit.into_actor(self).map(move |result, act, ctx| {
            act.committing = false;
            metrics::handled(
                ActorKind::WebhookReceiver,
                started.elapsed(),
                result.is_ok(),
            );
            act.answer(batch, result);
            act.commit_next_batch(ctx);
        }));
    }

    fn answer(
        &self,
        batch: Vec<(NewEvent, Waiter, Instant)>,
        result: Result<Vec<Appended>, facture_core::db::DbError>,
    ) {
        match result {
            Ok(outcomes) => {
                let journaled = self.db.ack_journal().is_some();
                let mut inserted = false;
                for ((event, waiter, received), outcome) in batch.into_iter().zip(outcomes) {
                    if let Appended::Inserted(id) = &outcome {
                        inserted = true;
                        if !journaled {
                            let key = event.session_id.clone().unwrap_or_else(|| id.clone());
                            self.hand_to_registry(ProcessEvent {
                                event_id: id.clone(),
                                key,
                            });
                        }
                    }
                    metrics::append_latency(received.elapsed());
                    let _ = waiter.send(Ok(outcome));
                }
                if journaled && inserted {
                    self.hand_to_registry(ImportAcknowledged);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = batch.len(), "webhook append failed: answering 503");
                let message = format!("the event could not be committed: {e}");
                for (_, waiter, _) in batch {
                    let _ = waiter.send(Err(EngineError::Unavailable(message.clone())));
                }
            }
        }
    }
}

impl WebhookReceiver {
    /// Queues `msg` for the OrderRegistry without waiting. A full mailbox drops it: the
    /// events are committed, and the next import or sweep finds them.
    fn hand_to_registry<M>(&self, msg: M)
    where
        M: Message<Result = ()> + Send + std::fmt::Debug + 'static,
        OrderRegistry: Handler<M>,
    {
        metrics::enqueued(ActorKind::OrderRegistry);
        if let Err(e) = self.registry.try_send(msg) {
            metrics::dequeued(ActorKind::OrderRegistry);
            tracing::warn!(message = ?e.into_inner(), "order registry busy: the sweep will route the events");
        }
    }
}

impl Actor for WebhookReceiver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Supervised for WebhookReceiver {
    fn restarting(&mut self, _: &mut Self::Context) {
        metrics::restarted(ActorKind::WebhookReceiver);
        self.committing = false;
    }
}

impl Handler<AppendEvent> for WebhookReceiver {
    type Result = ();

    fn handle(&mut self, msg: AppendEvent, ctx: &mut Self::Context) {
        metrics::dequeued(ActorKind::WebhookReceiver);
        self.buffer.push((msg.event, msg.reply, Instant::now()));
        self.commit_next_batch(ctx);
    }
}

/// Appends `event` through the receiver at `receiver` and returns once the transaction
/// holding it has committed. The outcome comes straight from the receiver's commit to the
/// caller's thread, through a channel of the caller's own. An actix reply would be
/// forwarded by a task on the receiver's thread: one more hand-off, and one that waits
/// whenever a commit holds that thread.
pub async fn append(
    receiver: &Addr<WebhookReceiver>,
    event: NewEvent,
) -> Result<Appended, EngineError> {
    let (reply, outcome) = oneshot::channel();
    receiver.send(AppendEvent { event, reply }).await?;
    outcome
        .await
        .unwrap_or_else(|_| Err(EngineError::Unavailable("webhook receiver stopped".into())))
}
