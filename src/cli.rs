//! The command line. Every subcommand is declared here; each is implemented in
//! `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "facture",
    version,
    about = "Turns Stripe payments into legal French invoices"
)]
pub struct Cli {
    /// A TOML file overriding the built-in defaults (environment variables override both).
    #[arg(long, global = true, env = "FACTURE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Render a sample invoice from the configured company, to check the layout.
    RenderSample {
        /// Where to write the PDF.
        #[arg(long, default_value = "sample.pdf")]
        out: PathBuf,
    },
    /// Customer orders.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Post a correctly signed `checkout.session.completed` for an order to a running facture.
    SimulatePayment(SimulatePayment),
    /// Re-drive stored webhook events (and dead-lettered order steps) through the engine.
    Replay(Replay),
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Create a customer order waiting for payment; prints its id and session id.
    Create(CreateOrder),
}

#[derive(Debug, Args)]
pub struct CreateOrder {
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub title: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Tax-inclusive amount in cents (e.g. 12000 for 120,00 €).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=100_000_000))]
    pub amount_cents: i64,
    /// Checkout Session id to attach (default: a fresh cs_test_… id).
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long, default_value = "Client")]
    pub first_name: String,
    #[arg(long, default_value = "Test")]
    pub last_name: String,
}

#[derive(Debug, Args)]
pub struct SimulatePayment {
    /// The order's Checkout Session id.
    #[arg(long)]
    pub session: String,
    /// Base URL of the running facture (default: from server.host and server.port).
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct Replay {
    /// Only events that failed (and dead-lettered order steps).
    #[arg(long)]
    pub failed: bool,
    /// Only this Stripe event.
    #[arg(long)]
    pub event: Option<String>,
}
