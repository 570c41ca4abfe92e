//! Stripe events for tests, built from Stripe's published fixtures (tests/fixtures/stripe)
//! and signed like Stripe signs them.

use facture_core::stripe::sign;
use serde_json::{json, Value};

use crate::helpers::{TestApp, SECRETS};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/stripe/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON")
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A `checkout.session.*` event for `session`, every other field as Stripe sends it.
pub fn session_event(event_type: &str, event_id: &str, session: &str, amount: i64) -> Vec<u8> {
    let mut e = fixture("checkout.session.completed");
    e["id"] = json!(event_id);
    e["type"] = json!(event_type);
    e["created"] = json!(now());
    let o = &mut e["data"]["object"];
    o["id"] = json!(session);
    o["amount_total"] = json!(amount);
    o["currency"] = json!("eur");
    o["metadata"] = json!({});
    o["payment_intent"] = json!(format!(
        "pi_{}",
        &session[session.len().saturating_sub(12)..]
    ));
    let paid = matches!(
        event_type,
        "checkout.session.completed" | "checkout.session.async_payment_succeeded"
    );
    o["payment_status"] = json!(if paid { "paid" } else { "unpaid" });
    o["status"] = json!(if event_type == "checkout.session.expired" {
        "expired"
    } else {
        "complete"
    });
    serde_json::to_vec(&e).unwrap()
}

pub fn completed(event_id: &str, session: &str, amount: i64) -> Vec<u8> {
    session_event("checkout.session.completed", event_id, session, amount)
}

pub fn signed(body: &[u8]) -> String {
    sign(body, SECRETS[0], now())
}

pub fn evt() -> String {
    format!("evt_{}", facture_core::random_hex(12))
}

pub fn session() -> String {
    format!("cs_test_{}", facture_core::random_hex(16))
}

impl TestApp {
    /// POSTs a webhook body with an optional Stripe-Signature header.
    pub async fn post_webhook(&self, body: Vec<u8>, signature: Option<String>) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/payments/webhook"))
            .insert_header(("Content-Type", "application/json"));
        if let Some(sig) = signature {
            req = req.insert_header(("Stripe-Signature", sig));
        }
        let mut res = req.send_body(body).await.expect("webhook request");
        let bytes = res.body().await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or_default(),
        )
    }

    /// Signs and posts.
    pub async fn deliver(&self, body: Vec<u8>) -> (u16, Value) {
        let sig = signed(&body);
        self.post_webhook(body, Some(sig)).await
    }
}
