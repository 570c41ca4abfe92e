//! `facture simulate-payment`: posts a `checkout.session.completed` for an order, signed
//! with the configured webhook secret, to a running facture — the real path, end to end.

use facture_core::config::Settings;
use facture_core::orders::find_by_session;
use facture_core::stripe::sign;
use serde_json::{json, Value};

use crate::cli::SimulatePayment;

/// Stripe's published `checkout.session.completed` (every field Stripe sends).
const TEMPLATE: &str =
    include_str!("../../tests/fixtures/stripe/events/checkout.session.completed.json");

/// A completed, paid event for `session` in Stripe's exact shape.
pub fn completed_event(event_id: &str, session: &str, amount_cents: i64, created: i64) -> Vec<u8> {
    let mut e: Value = serde_json::from_str(TEMPLATE).expect("embedded fixture is JSON");
    e["id"] = json!(event_id);
    e["created"] = json!(created);
    let o = &mut e["data"]["object"];
    o["id"] = json!(session);
    o["amount_total"] = json!(amount_cents);
    o["amount_subtotal"] = json!(amount_cents);
    o["currency"] = json!("eur");
    o["payment_status"] = json!("paid");
    o["status"] = json!("complete");
    o["metadata"] = json!({});
    serde_json::to_vec(&e).expect("serializable")
}

pub async fn run(mut settings: Settings, args: SimulatePayment) -> anyhow::Result<()> {
    settings.ensure_secrets()?;
    let db = super::open_db(&settings).await?;
    let order = find_by_session(&db, &args.session)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no order has session {}", args.session))?;
    let now = chrono::Utc::now().timestamp();
    let event_id = format!("evt_sim_{}", facture_core::random_hex(12));
    let body = completed_event(&event_id, &args.session, order.amount_cents, now);
    let secret = settings
        .stripe
        .webhook_secrets
        .first()
        .ok_or_else(|| anyhow::anyhow!("no webhook secret configured"))?;
    let signature = sign(&body, secret, now);
    let base = args
        .url
        .unwrap_or_else(|| format!("http://{}:{}", settings.server.host, settings.server.port));
    let mut res = awc::Client::new()
        .post(format!("{}/payments/webhook", base.trim_end_matches('/')))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Stripe-Signature", signature))
        .send_body(body)
        .await
        .map_err(|e| anyhow::anyhow!("posting to {base}: {e}"))?;
    let answer = res.body().await.unwrap_or_default();
    println!(
        "{event_id}: {} {}",
        res.status(),
        String::from_utf8_lossy(&answer)
    );
    if !res.status().is_success() {
        anyhow::bail!("facture answered {}", res.status());
    }
    Ok(())
}
