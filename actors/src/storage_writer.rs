//! StorageWriter: files under the storage root. The blocking file system calls (write,
//! fsync, rename) run on tokio's blocking pool, never on an executor thread.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use facture_core::storage::{Storage, StoredFile};

use crate::error::EngineError;
use crate::messages::{ReadInvoice, StoreInvoice};
use crate::metrics::{self, ActorKind};

pub struct StorageWriter {
    storage: Arc<Storage>,
    mailbox_capacity: usize,
}

impl StorageWriter {
    pub fn new(storage: Storage, mailbox_capacity: usize) -> Self {
        Self {
            storage: Arc::new(storage),
            mailbox_capacity,
        }
    }
}

impl Actor for StorageWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl StorageWriter {
    /// Clears what a killed predecessor left half-written. Called once at start-up,
    /// before the engine routes any work.
    pub fn remove_stale_temp_files(storage: &Storage) {
        match storage.remove_stale_temp_files() {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed temporary files left by a crash"),
            Err(e) => tracing::warn!(error = %e, "could not clean temporary files"),
        }
    }
}

impl Supervised for StorageWriter {
    fn restarting(&mut self, _: &mut Self::Context) {
        metrics::restarted(ActorKind::StorageWriter);
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, facture_core::storage::StorageError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Unavailable(format!("storage task: {e}")))?
        .map_err(EngineError::from)
}

impl Handler<StoreInvoice> for StorageWriter {
    type Result = ResponseFuture<Result<StoredFile, EngineError>>;

    fn handle(&mut self, msg: StoreInvoice, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::StorageWriter);
        let storage = self.storage.clone();
        Box::pin(async move {
            let started = Instant::now();
            let result = blocking(move || storage.write_invoice(msg.invoice_id, &msg.bytes)).await;
            metrics::handled(ActorKind::StorageWriter, started.elapsed(), result.is_ok());
            result
        })
    }
}

impl Handler<ReadInvoice> for StorageWriter {
    type Result = ResponseFuture<Result<Vec<u8>, EngineError>>;

    fn handle(&mut self, msg: ReadInvoice, _: &mut Self::Context) -> Self::Result {
        metrics::dequeued(ActorKind::StorageWriter);
        let storage = self.storage.clone();
        Box::pin(
            async move { blocking(move || storage.verify(&msg.relative_path, &msg.sha256)).await },
        )
    }
}
