use std::process::ExitCode;

use clap::Parser;
use facture::cli::{Cli, Command};
use facture::{startup, telemetry};
use facture_core::config::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("facture: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => startup::serve(settings),
        Command::Migrate => {
            let url = settings.database_url()?;
            let applied =
                facture_core::db::run_migrations_blocking(&url, settings.database.busy_timeout_ms)?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
    }
}
