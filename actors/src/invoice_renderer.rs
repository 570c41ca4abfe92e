//! InvoiceRenderer: a pool of synchronous actors (one thread each, sized to the cores)
//! turning invoice data into PDF bytes. Pure CPU, no I/O.
//!
//! SyncArbiter's queue is unbounded, so callers take a [`RenderPermits`] permit before
//! sending: at most `permits` renders are queued or running, and an OrderActor that finds
//! none waits (backpressure) instead of piling work up. A panic while rendering is caught
//! here and returned as an error, so one bad document cannot take a pool thread down.
//!
//! `engine.render_delay_ms` (fault injection) makes every render sleep that long on its
//! pool thread first: a slow consumer, to drill backpressure with a real process.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use facture_core::config::CompanySettings;
use facture_core::pdf::render_invoice;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::EngineError;
use crate::messages::Render;
use crate::metrics::{self, ActorKind};

pub struct InvoiceRenderer {
    company: Arc<CompanySettings>,
    gate: RenderGate,
    delay: Duration,
}

impl InvoiceRenderer {
    /// `delay` is the fault-injection sleep before each render (`engine.render_delay_ms`;
    /// zero in normal operation). Each pool thread runs at niceness `nice` (see
    /// [`crate::run_in_background`]).
    pub fn start(
        threads: usize,
        nice: i32,
        company: CompanySettings,
        gate: RenderGate,
        delay: Duration,
    ) -> Addr<Self> {
        let company = Arc::new(company);
        // SyncArbiter calls the factory on each pool thread, once, as it starts.
        SyncArbiter::start(threads.max(1), move || {
            crate::run_in_background(nice);
            InvoiceRenderer {
                company: company.clone(),
                gate: gate.clone(),
                delay,
            }
        })
    }
}

impl Actor for InvoiceRenderer {
    type Context = SyncContext<Self>;
}

impl Handler<Render> for InvoiceRenderer {
    type Result = Result<Vec<u8>, EngineError>;

    fn handle(&mut self, msg: Render, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::InvoiceRenderer);
        // Held by tests (and ops drills) to simulate a saturated pool.
        let _open = self.gate.0.read().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        metrics::renders_in_flight(1.0);
        if !self.delay.is_zero() {
            // A slow renderer, on purpose: this pool thread is busy for the whole delay.
            std::thread::sleep(self.delay);
        }
        let result = catch_unwind(AssertUnwindSafe(|| render_invoice(&msg.0, &self.company)));
        metrics::renders_in_flight(-1.0);
        let result = match result {
            Ok(r) => r.map_err(EngineError::from),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(number = %msg.0.number, panic = %what, "renderer panicked");
                Err(EngineError::RenderPanic(what))
            }
        };
        metrics::handled(
            ActorKind::InvoiceRenderer,
            started.elapsed(),
            result.is_ok(),
        );
        result
    }
}

/// Bounds the renders queued or running at once.
#[derive(Clone)]
pub struct RenderPermits(Arc<Semaphore>);

impl RenderPermits {
    pub fn new(n: usize) -> Self {
        Self(Arc::new(Semaphore::new(n.max(1))))
    }

    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        metrics::render_permits_waiting(1.0);
        let permit = self
            .0
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        metrics::render_permits_waiting(-1.0);
        permit
    }
}

/// A switch that holds every render until released (fault drills and tests).
#[derive(Clone, Default)]
pub struct RenderGate(Arc<RwLock<()>>);

impl RenderGate {
    /// Blocks every render until the returned guard is dropped.
    pub fn hold(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}
