//! What facture needs from Stripe's webhooks: signature verification and a lenient event
//! decoder. Pure functions, no I/O (fuzzable, benchable).

pub mod event;
pub mod signature;

pub use event::{decode_event, EventKind, StripeEvent};
pub use signature::{sign, verify, SignatureError};
