//! facture: the HTTP layer, start-up wiring and the command line. The actor tree lives in
//! `facture-actors`, the domain in `facture-core`.

pub mod auth;
pub mod cli;
pub mod commands;
pub mod error;
pub mod routes;
pub mod startup;
pub mod stripe_client;
pub mod telemetry;
pub mod telemetry_metrics;
