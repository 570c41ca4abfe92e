//! facture-actors: the actor tree that turns an acknowledged Stripe event into a mailed
//! invoice. Read [`Engine::start`] for the wiring; `messages` is the tree's public API.
//!
//! ```text
//! WebhookReceiver ──▶ OrderRegistry ──▶ OrderActor (one per order)
//!                                          ├─▶ InvoiceRenderer pool (SyncArbiter)
//!                                          ├─▶ StorageWriter
//!                                          ├─▶ Mailer
//!                                          └─▶ NotificationBus ──▶ Mailer
//! ```
//!
//! Supervision: the long-lived actors run under `actix::Supervisor`, which restarts an
//! actor when it stops. A handler panic is not a stop in actix, so handlers return errors
//! instead of panicking, and the renderer pool catches panics at its boundary.

pub mod error;
pub mod invoice_renderer;
pub mod mailer;
pub mod messages;
pub mod metrics;
pub mod notification_bus;
pub mod operations;
pub mod order_actor;
pub mod order_registry;
pub mod storage_writer;
pub mod webhook_receiver;

use std::sync::Arc;

use actix::prelude::*;
use facture_core::config::Settings;
use facture_core::db::models::Notification;
use facture_core::db::Db;
use facture_core::mail::retry::RetryPolicy;
use facture_core::mail::Mailer as CoreMailer;
use facture_core::notifications::NotificationStore;
use facture_core::storage::Storage;
use tokio::sync::broadcast;

pub use error::EngineError;
use invoice_renderer::{InvoiceRenderer, RenderGate, RenderPermits};
use mailer::Mailer;
use notification_bus::NotificationBus;
use order_actor::OrderDeps;
use order_registry::OrderRegistry;
use storage_writer::StorageWriter;
use webhook_receiver::WebhookReceiver;

/// Handles to the running tree. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub receiver: Addr<WebhookReceiver>,
    pub registry: Addr<OrderRegistry>,
    pub deps: Arc<OrderDeps>,
    pub core_mailer: CoreMailer,
    render_gate: RenderGate,
    live: broadcast::Sender<Notification>,
}

impl Engine {
    /// Starts every actor. Must run inside an actix system.
    pub fn start(settings: &Settings, db: Db) -> Result<Engine, EngineError> {
        let engine = &settings.engine;
        let cap = engine.mailbox_capacity;
        let threads = if engine.render_pool == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            engine.render_pool
        };
        let render_gate = RenderGate::default();
        let nice = engine.background_nice;
        let renderer = InvoiceRenderer::start(
            threads,
            nice,
            settings.company.clone(),
            render_gate.clone(),
            std::time::Duration::from_millis(engine.render_delay_ms),
        );
        // The pipeline's actors share one thread marked for database work; mail (templates,
        // MIME, SMTP) has a second one, so that work runs beside the pipeline on the other
        // core. Both take turns on the same SQLite writer connection.
        let pipeline = database_arbiter(nice);
        let mail = database_arbiter(nice);
        let storage = Storage::new(settings.storage.root.clone());
        StorageWriter::remove_stale_temp_files(&storage);
        // On the pipeline's thread, its only client: a store is then one hand-off to the
        // blocking pool and back, not two more through another thread.
        let storage =
            Supervisor::start_in_arbiter(&pipeline, move |_| StorageWriter::new(storage, cap));
        // Everything on the pipeline's thread reads through its writer (warm page cache).
        let pipeline_db = db.for_pipeline();
        let core_mailer = CoreMailer::new(&settings.mail, &settings.app, pipeline_db.clone())?;
        let mailer = {
            let m = core_mailer.clone();
            Supervisor::start_in_arbiter(&mail, move |_| Mailer::new(m, cap))
        };
        let (live, _) = broadcast::channel(1024);
        let bus = {
            let (store, mailer, admin, live) = (
                NotificationStore::new(pipeline_db.clone()),
                mailer.clone(),
                settings.mail.admin.clone(),
                live.clone(),
            );
            Supervisor::start_in_arbiter(&mail, move |_| {
                NotificationBus::new(store, mailer, admin, live, cap)
            })
        };
        let deps = Arc::new(OrderDeps {
            db: pipeline_db,
            settings: settings.clone(),
            node_id: format!("{}-{}", hostname(), uuid::Uuid::new_v4()),
            renderer,
            permits: RenderPermits::new(threads * 2),
            storage,
            mailer,
            bus,
            policy: RetryPolicy::from_engine(engine),
            active: Arc::new(tokio::sync::Semaphore::new(engine.max_active_orders)),
        });
        let registry = {
            let deps = deps.clone();
            Supervisor::start_in_arbiter(&pipeline, move |_| OrderRegistry::new(deps))
        };
        // The receiver's thread exists for its group commits, so it is marked for database
        // work too: a batch's single call (statements, COMMIT, WAL sync) runs there instead of
        // a round trip to the blocking pool. It keeps the process's priority, and asks for a
        // short time slice so that, woken, it preempts a background thread at once.
        let receiver = {
            let (db, registry, max) = (db, registry.clone(), engine.max_batch);
            let delay = std::time::Duration::from_millis(engine.append_delay_ms);
            let thread = database_arbiter(0);
            let slice = engine.ack_slice_us;
            thread.spawn_fn(move || run_with_short_slice(slice));
            Supervisor::start_in_arbiter(&thread, move |_| {
                WebhookReceiver::new(db, registry, max, cap).with_commit_delay(delay)
            })
        };
        Ok(Engine {
            receiver,
            registry,
            deps,
            core_mailer,
            render_gate,
            live,
        })
    }

    /// Holds every render until the guard is dropped (tests and drills: a saturated pool).
    pub fn render_gate(&self) -> RenderGate {
        self.render_gate.clone()
    }

    /// New admin notifications as they are stored.
    pub fn subscribe(&self) -> broadcast::Receiver<Notification> {
        self.live.subscribe()
    }

    /// OrderActors alive now.
    pub async fn live_orders(&self) -> Result<usize, EngineError> {
        Ok(self.registry.send(messages::LiveOrders).await?)
    }

    /// Runs a recovery sweep now and reports what it routed.
    pub async fn sweep(&self) -> Result<messages::SweepReport, EngineError> {
        self.registry.send(messages::Sweep).await?
    }
}

/// A thread for database work: one runs the OrderRegistry and every OrderActor it spawns,
/// another the Mailer and the NotificationBus, a third the WebhookReceiver. Each is marked
/// for database work (see `facture_core::db::blocking`), so their SQLite transactions run
/// there without a thread handoff per statement. The pipeline's two run at `nice`
/// ([`run_in_background`]); the receiver's at 0, since acknowledgements wait on it.
fn database_arbiter(nice: i32) -> ArbiterHandle {
    let arbiter = Arbiter::new();
    arbiter.spawn_fn(move || {
        facture_core::db::blocking::mark_current_thread_for_database_work();
        run_in_background(nice);
    });
    arbiter.handle()
}

/// Lowers the calling thread's CPU priority to niceness `nice` (`engine.background_nice`),
/// for the threads whose work follows the acknowledgement. On two cores the pipeline keeps
/// both busy under a burst, and the acknowledgements then waited for a core (their p99 at
/// 2,000 events/s was 6–7 ms with the database's share of it under 1 ms); at a lower
/// priority the pipeline yields to them. Lowering needs no privilege; on Linux niceness is
/// per thread. A refusal is logged and changes nothing else.
pub fn run_in_background(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), nice) {
            tracing::warn!(thread = thread.as_raw_nonzero().get(), nice, %error, "could not lower the thread's priority");
        }
    }
}

/// Asks the kernel for a time slice of `slice_us` microseconds (`engine.ack_slice_us`) for
/// the calling thread, one an acknowledgement waits on (an HTTP worker, the webhook
/// receiver). Linux's EEVDF scheduler (6.12 and later) lets a waking thread whose slice is
/// shorter than the running thread's preempt it at once. With the default slice, a woken
/// receiver sat behind a niceness-19 pipeline thread until the next tick, 2–3 ms, while
/// every request in flight waited on it (`perf sched`, BENCHMARKS.md, seventh session).
/// The thread keeps its policy and niceness. 0 changes nothing. A refusal (an older kernel,
/// another OS) is logged and changes nothing else.
pub fn run_with_short_slice(slice_us: u64) {
    if slice_us == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = linux::set_slice(slice_us.saturating_mul(1_000)) {
        tracing::warn!(slice_us, %error, "could not shorten the thread's time slice");
    }
}

#[cfg(target_os = "linux")]
mod linux {
    /// `struct sched_attr` as the kernel defines it (`SCHED_ATTR_SIZE_VER0`, 48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        /// For SCHED_OTHER (since Linux 6.12): the slice asked for, in nanoseconds.
        runtime: u64,
        deadline: u64,
        period: u64,
    }

    /// Sets the calling thread's slice to `slice_ns`, keeping SCHED_OTHER and its niceness.
    pub(super) fn set_slice(slice_ns: u64) -> std::io::Result<()> {
        let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()))?;
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            flags: 0,
            nice,
            priority: 0,
            runtime: slice_ns,
            deadline: 0,
            period: 0,
        };
        // SAFETY: sched_setattr(2) reads `size` bytes from the pointer, which points to a live
        // `#[repr(C)]` value of exactly that size laid out as the kernel's struct; pid 0 is the
        // calling thread, and the call keeps no pointer after it returns. No safe wrapper
        // offers this system call (neither rustix nor libc).
        #[allow(unsafe_code)]
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, std::ptr::from_ref(&attr), 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "facture".into())
}
