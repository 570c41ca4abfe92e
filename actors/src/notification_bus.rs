//! NotificationBus: fans a domain event out to its subscribers — the admin notification
//! store, the admin mailbox for important events, and live listeners (the admin stream).

use std::time::Instant;

use actix::prelude::*;
use facture_core::db::models::Notification;
use facture_core::mail::{Deferred, OutgoingMail};
use facture_core::notifications::{self, admin_mail, is_important, DomainEvent, NotificationStore};
use tokio::sync::broadcast;

use crate::error::EngineError;
use crate::mailer::Mailer;
use crate::messages::{Announce, Notice, PrepareNotice, Publish, SendDeferred, SendMail};
use crate::metrics::{self, ActorKind};

pub struct NotificationBus {
    store: NotificationStore,
    mailer: Addr<Mailer>,
    admin: String,
    live: broadcast::Sender<Notification>,
    mailbox_capacity: usize,
}

impl NotificationBus {
    pub fn new(
        store: NotificationStore,
        mailer: Addr<Mailer>,
        admin: String,
        live: broadcast::Sender<Notification>,
        mailbox_capacity: usize,
    ) -> Self {
        Self {
            store,
            mailer,
            admin,
            live,
            mailbox_capacity,
        }
    }
}

impl Actor for NotificationBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Supervised for NotificationBus {
    fn restarting(&mut self, _: &mut Self::Context) {
        metrics::restarted(ActorKind::NotificationBus);
    }
}

/// The mail to the admins for an important event, under the dedupe key derived from the
/// notification's (so a re-driven step sends it at most once); `None` for the others.
fn admin_mail_for(admin: String, event: &DomainEvent, key: Option<&str>) -> Option<OutgoingMail> {
    let content = admin_mail(event).filter(|_| is_important(event))?;
    let mail = OutgoingMail::new(admin, content);
    Some(match key {
        Some(key) => mail.dedupe_key(notifications::admin_mail_key(key)),
        None => mail,
    })
}

impl Handler<Publish> for NotificationBus {
    type Result = ResponseFuture<Result<(), EngineError>>;

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::NotificationBus);
        let store = self.store.clone();
        let mailer = self.mailer.clone();
        let admin = self.admin.clone();
        let live = self.live.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = async {
                let (row, created) = store.record(&msg.event, msg.dedupe_key.as_deref()).await?;
                if created {
                    // Nobody listening is fine.
                    let _ = live.send(row);
                }
                if let Some(mail) = admin_mail_for(admin, &msg.event, msg.dedupe_key.as_deref()) {
                    metrics::enqueued(ActorKind::Mailer);
                    let outcome = mailer.send(SendMail(mail)).await??;
                    if !outcome.is_sent() {
                        return Err(EngineError::not_delivered(outcome));
                    }
                }
                Ok(())
            }
            .await;
            metrics::handled(
                ActorKind::NotificationBus,
                started.elapsed(),
                result.is_ok(),
            );
            result
        })
    }
}

impl Handler<PrepareNotice> for NotificationBus {
    type Result = ResponseFuture<Result<Notice, EngineError>>;

    fn handle(&mut self, msg: PrepareNotice, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::NotificationBus);
        let store = self.store.clone();
        let mailer = self.mailer.clone();
        let admin = self.admin.clone();
        let live = self.live.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = async {
                let notification = notifications::prepare(&msg.event, Some(&msg.dedupe_key))?;
                let Some(mail) = admin_mail_for(admin, &msg.event, Some(&msg.dedupe_key)) else {
                    return Ok(Notice {
                        notification,
                        delivery: None,
                    });
                };
                let mail = mail.stored(msg.stored);
                metrics::enqueued(ActorKind::Mailer);
                let delivery = match mailer.send(SendDeferred(mail)).await?? {
                    Deferred::Sent(delivery) => Some(delivery),
                    Deferred::Recorded(outcome) if outcome.is_sent() => None,
                    Deferred::Recorded(outcome) => {
                        // The admins still see the event in the app while their mail fails.
                        let (row, created) =
                            store.record(&msg.event, Some(&msg.dedupe_key)).await?;
                        if created {
                            let _ = live.send(row);
                        }
                        return Err(EngineError::not_delivered(outcome));
                    }
                };
                Ok(Notice {
                    notification,
                    delivery,
                })
            }
            .await;
            metrics::handled(
                ActorKind::NotificationBus,
                started.elapsed(),
                result.is_ok(),
            );
            result
        })
    }
}

impl Handler<Announce> for NotificationBus {
    type Result = ();

    fn handle(&mut self, msg: Announce, _: &mut Self::Context) {
        metrics::dequeued(ActorKind::NotificationBus);
        let started = Instant::now();
        // Nobody listening is fine.
        let _ = self.live.send(msg.0);
        metrics::handled(ActorKind::NotificationBus, started.elapsed(), true);
    }
}
