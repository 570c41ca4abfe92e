//! Mailer: the actor in front of facture-core's mailer (templates, transport, delivery
//! log, retries with backoff). Each message is sent on its own task, so a slow SMTP
//! server delays that message only. Every send goes through this actor — including the
//! admin API's retries — because lettre's SMTP pool belongs to the runtime it started on.

use std::time::Instant;

use actix::prelude::*;
use facture_core::mail::{Deferred, DeliveryOutcome, Mailer as CoreMailer};

use crate::error::EngineError;
use crate::messages::{RetryDelivery, SendDeferred, SendMail};
use crate::metrics::{self, ActorKind};

pub struct Mailer {
    mailer: CoreMailer,
    mailbox_capacity: usize,
}

impl Mailer {
    pub fn new(mailer: CoreMailer, mailbox_capacity: usize) -> Self {
        Self {
            mailer,
            mailbox_capacity,
        }
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Supervised for Mailer {
    fn restarting(&mut self, _: &mut Self::Context) {
        metrics::restarted(ActorKind::Mailer);
    }
}

impl Handler<SendMail> for Mailer {
    type Result = ResponseFuture<Result<DeliveryOutcome, EngineError>>;

    fn handle(&mut self, msg: SendMail, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::Mailer);
        let mailer = self.mailer.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = mailer.send(msg.0).await.map_err(EngineError::from);
            let sent = matches!(&result, Ok(o) if o.is_sent());
            metrics::handled(ActorKind::Mailer, started.elapsed(), sent);
            metrics::mail(if sent { "sent" } else { "failed" });
            result
        })
    }
}

impl Handler<SendDeferred> for Mailer {
    type Result = ResponseFuture<Result<Deferred, EngineError>>;

    fn handle(&mut self, msg: SendDeferred, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::Mailer);
        let mailer = self.mailer.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = mailer.send_deferred(msg.0).await.map_err(EngineError::from);
            let sent = match &result {
                Ok(Deferred::Sent(_)) => true,
                Ok(Deferred::Recorded(o)) => o.is_sent(),
                Err(_) => false,
            };
            metrics::handled(ActorKind::Mailer, started.elapsed(), sent);
            metrics::mail(if sent { "sent" } else { "failed" });
            result
        })
    }
}

impl Handler<RetryDelivery> for Mailer {
    type Result = ResponseFuture<Result<DeliveryOutcome, EngineError>>;

    fn handle(&mut self, msg: RetryDelivery, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::Mailer);
        let mailer = self.mailer.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = mailer
                .retry_delivery(&msg.delivery_id, &msg.content, msg.attachment)
                .await
                .map_err(EngineError::from);
            let sent = matches!(&result, Ok(o) if o.is_sent());
            metrics::handled(ActorKind::Mailer, started.elapsed(), sent);
            metrics::mail(if sent { "sent" } else { "failed" });
            result
        })
    }
}
