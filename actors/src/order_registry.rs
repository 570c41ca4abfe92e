//! OrderRegistry: the map from an order's key (its Checkout Session id) to the OrderActor
//! handling it. Spawns actors on demand, forgets them when they stop, and runs the
//! recovery sweep: at start-up and periodically, every unfinished event and pipeline in
//! the database is routed again (so nothing acknowledged waits on memory).
//!
//! On SQLite it also imports acknowledged events from the journal into `webhook_events`
//! (`facture_core::db::ack_journal`), on the pipeline's thread, when the receiver asks and
//! before every sweep, then routes those it copied. One import runs at a time; asks that
//! arrive meanwhile make one more.
//!
//! An actor stops as soon as its last queued message is handled (and, failing that, after
//! `engine.order_idle_secs` idle): the registry counts the messages it queued to each one.
//!
//! At most `engine.max_live_orders` actors live at once. An event for a new order past that
//! is not routed: it is committed, so it waits in the database, and the registry sweeps
//! again as soon as half the actors have stopped. So it does after a sweep that read a
//! full batch (`engine.sweep_batch`): more may wait behind it. The sweep skips orders whose
//! actor is alive: that actor has their work queued already, or will have after it stops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use facture_core::{events, orders};

use crate::error::EngineError;
use crate::messages::{
    DrivePipeline, ImportAcknowledged, LiveOrders, OrderStopped, ProcessEvent, Sweep, SweepReport,
};
use crate::metrics::{self, ActorKind};
use crate::order_actor::{OrderActor, OrderDeps};

pub struct OrderRegistry {
    deps: Arc<OrderDeps>,
    /// Each live actor under its key, with the number it was started under: a stopped
    /// actor's `OrderStopped` removes its own entry, never a newer actor's for the same key.
    /// So the map holds only actors not yet known to have stopped, and its size is the
    /// live count without a scan.
    orders: HashMap<String, LiveOrder>,
    /// How many actors this registry has started: the last one's number.
    started: u64,
    /// Work may wait in the database with no actor to do it: `max_live_orders` actors were
    /// alive, or the last sweep read a full batch.
    work_left: bool,
    /// An import of acknowledged events is running.
    importing: bool,
    /// Events were acknowledged while it ran: import again when it ends.
    import_again: bool,
}

/// A live actor: the number it was started under, its address, and how many messages
/// the registry has queued to it that it has not begun to handle.
struct LiveOrder {
    generation: u64,
    addr: Addr<OrderActor>,
    queued: Arc<AtomicUsize>,
}

impl OrderRegistry {
    pub fn new(deps: Arc<OrderDeps>) -> Self {
        Self {
            deps,
            orders: HashMap::new(),
            started: 0,
            work_left: false,
            importing: false,
            import_again: false,
        }
    }

    /// Copies the journal's new events into `webhook_events` and routes them, then imports
    /// again if more were acknowledged meanwhile. A failure leaves them to the next ask or
    /// sweep (the sweep imports first).
    fn import_acknowledged(&mut self, ctx: &mut Context<Self>) {
        if self.importing {
            self.import_again = true;
            return;
        }
        self.importing = true;
        self.import_again = false;
        let db = self.deps.db.clone();
        let limit = self.import_limit();
        let started = std::time::Instant::now();
        ctx.spawn(
            async move { events::import_acknowledged(&db, limit).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.importing = false;
                    // An import, from its start to its commit, is what the registry handles.
                    metrics::handled(ActorKind::OrderRegistry, started.elapsed(), result.is_ok());
                    match result {
                        Ok(imported) => {
                            for (event_id, session) in imported.events {
                                let key = session.unwrap_or_else(|| event_id.clone());
                                act.route(&key.clone(), ProcessEvent { event_id, key }, ctx);
                            }
                            act.import_again |= imported.more;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "import of acknowledged events failed: the sweep retries");
                            act.import_again = false;
                        }
                    }
                    if act.import_again {
                        act.import_acknowledged(ctx);
                    }
                }),
        );
    }

    fn import_limit(&self) -> i64 {
        i64::try_from(self.deps.settings.engine.sweep_batch.max(1)).unwrap_or(i64::MAX)
    }

    fn is_live(&self, key: &str) -> bool {
        self.orders.get(key).is_some_and(|o| o.addr.connected())
    }

    /// The order's actor, started if needed; `None` when `max_live_orders` are alive.
    fn actor_for(&mut self, key: &str, ctx: &mut Context<Self>) -> Option<&LiveOrder> {
        if self.is_live(key) {
            return self.orders.get(key);
        }
        // An entry left here is an actor that stopped but whose `OrderStopped` is still in
        // this mailbox: it counts until then (a moment), and is replaced below.
        if self.orders.len() >= self.deps.settings.engine.max_live_orders {
            self.work_left = true;
            return None;
        }
        self.started += 1;
        let generation = self.started;
        let queued = Arc::new(AtomicUsize::new(0));
        let addr = OrderActor::new(
            key.to_owned(),
            generation,
            self.deps.clone(),
            ctx.address(),
            queued.clone(),
        )
        .start();
        self.orders.insert(
            key.to_owned(),
            LiveOrder {
                generation,
                addr,
                queued,
            },
        );
        metrics::live_orders(self.orders.len());
        self.orders.get(key)
    }

    /// Hands a message to the order's actor without waiting. A full mailbox, or too many
    /// live actors, drops it: the work is in the database and a sweep routes it again.
    fn route<M>(&mut self, key: &str, msg: M, ctx: &mut Context<Self>)
    where
        M: Message<Result = ()> + Send + 'static,
        OrderActor: Handler<M>,
    {
        let Some(actor) = self.actor_for(key, ctx) else {
            tracing::debug!(key, "too many live orders: left for the sweep");
            return;
        };
        metrics::enqueued(ActorKind::Order);
        // Counted before it is queued: the actor stops only with nothing counted.
        actor.queued.fetch_add(1, Ordering::Relaxed);
        if actor.addr.try_send(msg).is_err() {
            actor.queued.fetch_sub(1, Ordering::Relaxed);
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
        // An import in flight went with the old context; the sweep at start imports again.
        self.importing = false;
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

impl Handler<ImportAcknowledged> for OrderRegistry {
    type Result = ();

    fn handle(&mut self, _: ImportAcknowledged, ctx: &mut Self::Context) {
        metrics::dequeued(ActorKind::OrderRegistry);
        self.import_acknowledged(ctx);
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

    fn handle(&mut self, msg: OrderStopped, ctx: &mut Self::Context) {
        if self
            .orders
            .get(&msg.key)
            .is_some_and(|o| o.generation == msg.generation)
        {
            self.orders.remove(&msg.key);
        }
        metrics::live_orders(self.orders.len());
        if self.work_left && self.orders.len() <= self.deps.settings.engine.max_live_orders / 2 {
            self.work_left = false;
            ctx.notify(SweepNow);
        }
    }
}

impl Handler<LiveOrders> for OrderRegistry {
    type Result = usize;

    fn handle(&mut self, _: LiveOrders, _: &mut Self::Context) -> usize {
        self.orders.values().filter(|o| o.addr.connected()).count()
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
        // Live actors' own work comes back too (oldest first) and is skipped: look past it.
        let batch = self.deps.settings.engine.sweep_batch.max(1) + self.orders.len();
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let import_limit = self.import_limit();
        Box::pin(
            async move {
                // What is still only in the journal (a crash before its import, a full
                // mailbox) joins webhook_events first, to be found below with the rest.
                while events::import_acknowledged(&db, import_limit).await?.more {}
                // The journal keeps imported rows a week (for duplicates), then lets go.
                let pruned =
                    events::prune_journal(&db, events::JOURNAL_RETENTION, import_limit).await?;
                if pruned > 0 {
                    tracing::info!(pruned, "old imported events pruned from the journal");
                }
                let events = events::unfinished(&db, limit).await?;
                let pipelines = orders::unfinished_pipelines(&db, limit).await?;
                Ok::<_, EngineError>((events, pipelines))
            }
            .into_actor(self)
            .map(move |found, act, ctx| {
                let (events, pipelines) = found?;
                let report = SweepReport {
                    events: events.len(),
                    pipelines: pipelines.len(),
                };
                // Without this, what lies past a full batch would wait for the next
                // interval's sweep (30 s by default) once the actors routed here are done.
                if events.len() >= batch || pipelines.len() >= batch {
                    act.work_left = true;
                }
                for (event_id, session) in events {
                    let key = session.unwrap_or_else(|| event_id.clone());
                    if !act.is_live(&key) {
                        act.route(&key.clone(), ProcessEvent { event_id, key }, ctx);
                    }
                }
                for (commande_id, session) in pipelines {
                    let key = session.unwrap_or_else(|| commande_id.clone());
                    if !act.is_live(&key) {
                        act.route(&key.clone(), DrivePipeline { commande_id, key }, ctx);
                    }
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
