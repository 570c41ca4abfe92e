use std::process::ExitCode;

use clap::Parser;
use facture::cli::{Cli, Command, OrdersCommand, UsersCommand};
use facture::commands;
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
        Command::RenderSample { out } => commands::render_sample::run(&settings, &out),
        Command::Orders(OrdersCommand::Create(args)) => {
            block_on(commands::orders::create(&settings, args))
        }
        Command::SimulatePayment(args) => block_on(commands::simulate_payment::run(settings, args)),
        Command::Replay(args) => block_on(commands::replay::run(&settings, args)),
        Command::Users(UsersCommand::CreateAdmin {
            email,
            password_stdin,
        }) => block_on(commands::users::create_admin(
            &settings,
            &email,
            password_stdin,
        )),
        Command::Loadgen(args) => block_on(commands::loadgen::run(settings, args)),
    }
}

/// One-off commands run on a small actix system (awc needs one).
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(f)
}
