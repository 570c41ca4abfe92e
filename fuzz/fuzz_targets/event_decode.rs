//! Stripe event decoding (`facture_core::stripe::decode_event`) on arbitrary bodies.
//!
//! Checks, besides "never panics": an accepted body is a well-formed event (an `evt_` id
//! and a type of at most 255 bytes, a kind matching the type, no control character in what
//! facture stores), every accessor the pipeline calls works on it, and decoding is
//! deterministic.
#![no_main]

use facture_core::stripe::{decode_event, EventKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_event(data) {
        Ok(event) => {
            assert!(
                event.id.starts_with("evt_") && event.id.len() <= 255,
                "{:?}",
                event.id
            );
            assert!(
                !event.event_type.is_empty() && event.event_type.len() <= 255,
                "{:?}",
                event.event_type
            );
            assert_eq!(event.kind, EventKind::from_type(&event.event_type));
            // What facture stores as text holds no control character (a NUL cannot be
            // stored on PostgreSQL).
            let o = &event.object;
            let texts = [
                Some(&event.id),
                Some(&event.event_type),
                o.id.as_ref(),
                o.object.as_ref(),
                o.payment_status.as_ref(),
                o.payment_intent.as_ref(),
                o.customer_email.as_ref(),
            ];
            for text in texts.into_iter().flatten() {
                assert!(!text.chars().any(char::is_control), "{text:?}");
            }
            let _ = (
                event.session_id(),
                event.payment_intent_id(),
                event.metadata("commande_id"),
                event.is_paid(),
                event.created,
            );
            assert_eq!(decode_event(data).as_ref(), Ok(&event));
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            assert!(decode_event(data).is_err());
        }
    }
});
