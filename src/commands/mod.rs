//! The subcommands other than `serve` and `migrate`.

pub mod loadgen;
pub mod orders;
pub mod render_sample;
pub mod replay;
pub mod simulate_payment;
pub mod users;

use facture_core::config::Settings;
use facture_core::db::Db;

/// Opens (and migrates) the configured database for a one-off command.
pub async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url()?;
    facture_core::db::run_migrations(&url, settings.database.busy_timeout_ms).await?;
    let db = Db::connect(&url, 2, settings.database.busy_timeout_ms).await?;
    db.set_write_batch_limits(
        settings.database.write_batch_max,
        std::time::Duration::from_millis(settings.database.write_batch_max_ms),
    );
    Ok(db)
}
