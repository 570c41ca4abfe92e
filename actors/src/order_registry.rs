//! OrderRegistry: the map from an order's key (its Checkout Session id) to the OrderActor
//! handling it. Spawns actors on demand, forgets them when they stop, and runs the
//! recovery sweep: at start-up and periodically, every unfinished event and pipeline in
//! the database is routed again (so nothing acknowledged waits on memory).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use facture_core::{events, orders};

use crate::error::EngineError;
use crate::messages::{DrivePipeline, OrderStopped, ProcessEvent, Sweep, SweepReport};
use crate::metrics::{self, ActorKind};
use crate::order_actor::{OrderActor, OrderDeps};

const SWEEP_BATCH: i64 = 1_000;

pub struct OrderRegistry {
    deps: Arc<OrderDeps>,
    orders: HashMap<String, Addr<OrderActor>>,
}

impl OrderRegistry {
    pub fn new(deps: Arc<OrderDeps>) -> Self {
        Self {
            deps,
            orders: HashMap::new(),
        }
    }

    fn actor_for(&mut self, key: &str, ctx: &mut Context<Self>) -> Addr<OrderActor> {
        if let Some(addr) = self.orders.get(key).filter(|a| a.connected()) {
            return addr.clone();
        }
        let addr = OrderActor::new(key.to_owned(), self.deps.clone(), ctx.address()).start();
        self.orders.insert(key.to_owned(), addr.clone());
        metrics::live_orders(self.orders.len());
        addr
    }

    /// Hands a message to the order's actor without waiting. A full mailbox drops it:
    /// the work is in the database and the next sweep routes it again.
    fn route<M>(&mut self, key: &str, msg: M, ctx: &mut Context<Self>)
    where
        M: Message<Result = ()> + Send + 'static,
        OrderActor: Handler<M>,
    {
        metrics::enqueued(ActorKind::Order);
        if self.actor_for(key, ctx).try_send(msg).is_err() {
            metrics::dequeued(ActorKind::Order);
            tracing::debug!(key, "order actor busy: left for the sweep");
        }
    }
}

impl Actor for OrderRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.deps.settings.engine.mailbox_capacity);
        let every = Duration::from_secs(self.deps.settings.engine.sweep_interval_secs.max(1));
        ctx.notify(SweepNow);
        ctx.run_interval(every, |_, ctx| ctx.notify(SweepNow));
    }
}

impl Supervised for OrderRegistry {
    fn restarting(&mut self, _: &mut Self::Context) {
        metrics::restarted(ActorKind::OrderRegistry);
        self.orders.clear();
    }
}

impl Handler<ProcessEvent> for OrderRegistry {
    type Result = ();

    fn handle(&mut self, msg: ProcessEvent, ctx: &mut Self::Context) {
        metrics::dequeued(ActorKind::OrderRegistry);
        let key = msg.key.clone();
        self.route(&key, msg, ctx);
    }
}

impl Handler<DrivePipeline> for OrderRegistry {
    type Result = ();

    fn handle(&mut self, msg: DrivePipeline, ctx: &mut Self::Context) {
        let key = msg.key.clone();
        self.route(&key, msg, ctx);
    }
}

impl Handler<OrderStopped> for OrderRegistry {
    type Result = ();

    fn handle(&mut self, msg: OrderStopped, _: &mut Self::Context) {
        if self.orders.get(&msg.key).is_some_and(|a| !a.connected()) {
            self.orders.remove(&msg.key);
        }
        metrics::live_orders(self.orders.len());
    }
}

/// Internal tick: run a sweep without anyone waiting for the report.
#[derive(Message)]
#[rtype(result = "()")]
struct SweepNow;

impl Handler<SweepNow> for OrderRegistry {
    type Result = ();

    fn handle(&mut self, _: SweepNow, ctx: &mut Self::Context) {
        let addr = ctx.address();
        ctx.spawn(
            async move {
                if let Err(e) = addr.send(Sweep).await {
                    tracing::warn!(error = %e, "sweep not run");
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<Sweep> for OrderRegistry {
    type Result = ResponseActFuture<Self, Result<SweepReport, EngineError>>;

    fn handle(&mut self, _: Sweep, _: &mut Self::Context) -> Self::Result {
        let db = self.deps.db.clone();
        Box::pin(
            async move {
                let events = events::unfinished(&db, SWEEP_BATCH).await?;
                let pipelines = orders::unfinished_pipelines(&db, SWEEP_BATCH).await?;
                Ok::<_, EngineError>((events, pipelines))
            }
            .into_actor(self)
            .map(|found, act, ctx| {
                let (events, pipelines) = found?;
                let report = SweepReport {
                    events: events.len(),
                    pipelines: pipelines.len(),
                };
                for (event_id, session) in events {
                    let key = session.unwrap_or_else(|| event_id.clone());
                    act.route(&key.clone(), ProcessEvent { event_id, key }, ctx);
                }
                for (commande_id, session) in pipelines {
                    let key = session.unwrap_or_else(|| commande_id.clone());
                    act.route(&key.clone(), DrivePipeline { commande_id, key }, ctx);
                }
                if report != SweepReport::default() {
                    tracing::info!(
                        events = report.events,
                        pipelines = report.pipelines,
                        "sweep routed unfinished work"
                    );
                }
                Ok(report)
            }),
        )
    }
}
