//! Integration tests: the real server on port 0, on a fresh SQLite file or PostgreSQL
//! database per test (FACTURE_TEST_DATABASE_URL), with real SMTP where mail is involved.

mod accounts;
mod admin_invoices;
mod admin_ops;
mod auth;
mod bad_input;
mod campaign;
mod checkout;
mod cli;
mod customer;
mod engine;
mod faults;
mod foundation;
mod helpers;
mod metrics;
mod process;
mod stripe;
mod webhook;
