//! facture-core: the domain below the actors. Database (diesel + diesel_async, one set of
//! queries for SQLite and PostgreSQL), money, invoice numbering, the PDF, storage, mail and
//! notifications. Nothing here knows about actix.

pub mod catalog;
pub mod checkout;
pub mod config;
pub mod db;
pub mod events;
pub mod invoices;
pub mod mail;
pub mod money;
pub mod notifications;
pub mod orders;
pub mod pdf;
pub mod storage;
pub mod stripe;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod users;

/// `n` random bytes as lowercase hex (ids for secrets and tokens).
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
