//! Test support shared by every crate's tests (feature `testkit`): a fresh database per
//! test on either engine, and a real SMTP server on 127.0.0.1.

pub mod db;
pub mod smtp;
