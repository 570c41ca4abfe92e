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
    /// Accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Load test: create orders, post their signed payments to a running facture, report.
    Loadgen(LoadgenArgs),
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Create a customer order waiting for payment; prints its id and session id.
    Create(CreateOrder),
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an ADMIN account, or promote the account with this email, and set its
    /// password. Without --password-stdin a random password is generated and printed.
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input (12 characters or more).
        #[arg(long)]
        password_stdin: bool,
    },
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

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Base URL of the running facture (default: from server.host and server.port).
    #[arg(long)]
    pub url: Option<String>,
    /// Webhook secret to sign with (default: the first configured one).
    #[arg(long)]
    pub secret: Option<String>,
    /// Orders to create (through the configured database) and pay.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub orders: u64,
    /// Events per second (all deliveries, duplicates included).
    #[arg(long, default_value_t = 500.0, conflicts_with = "burst")]
    pub rate: f64,
    /// Send as fast as the concurrency allows instead of at --rate.
    #[arg(long)]
    pub burst: bool,
    /// Requests in flight at once (and pooled connections).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// Deliver each event this many times (Stripe redelivers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub duplicates: u64,
    /// Deliver in random order (duplicates scattered) instead of order by order.
    #[arg(long)]
    pub shuffle: bool,
    /// Guest checkouts (pending orders: the payment creates the customer and the order).
    #[arg(long)]
    pub guest: bool,
    /// Seconds to wait for every invoice to be mailed after the last delivery (0: don't wait).
    #[arg(long, default_value_t = 600)]
    pub wait_secs: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}
