//! Integration tests: the real server on port 0, on a fresh SQLite file or PostgreSQL
//! database per test (FACTURE_TEST_DATABASE_URL), with real SMTP where mail is involved.

mod cli;
mod engine;
mod faults;
mod foundation;
mod helpers;
mod stripe;
mod webhook;
