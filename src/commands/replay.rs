//! `facture replay`: puts stored events back in the queue (Stripe's `events resend`, done
//! locally). A running facture picks them up at its next sweep; otherwise the next start
//! does. Processing is idempotent, so a replay never invoices twice.

use facture_core::config::Settings;
use facture_core::{events, orders};

use crate::cli::Replay;

pub async fn run(settings: &Settings, args: Replay) -> anyhow::Result<()> {
    let db = super::open_db(settings).await?;
    // No filter re-drives every stored event: harmless, since processing is idempotent.
    let events = events::requeue(&db, args.event.as_deref(), args.failed).await?;
    let pipelines = if args.event.is_none() {
        orders::requeue_failed_pipelines(&db).await?
    } else {
        0
    };
    println!("{events} event(s) and {pipelines} dead-lettered order(s) queued again");
    Ok(())
}
