//! POST /payments/webhook: verify, append durably, answer. Nothing else happens on this
//! path; the actor tree processes the event after the answer.

use actix_web::{web, HttpRequest, HttpResponse};
use facture_actors::webhook_receiver::verify_request;
use facture_core::events::Appended;
use futures_util::StreamExt;
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

pub fn scope(body_limit: usize) -> actix_web::Resource {
    web::resource("/payments/webhook")
        .app_data(web::Data::new(BodyLimit(body_limit)))
        .route(web::post().to(receive))
}

struct BodyLimit(usize);

/// Reads the raw body (the signature covers its exact bytes), refusing it past the limit.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = || {
        facture_actors::metrics::webhook_outcome("payload_too_large");
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the webhook body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request("invalid_body", format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    limit: web::Data<BodyLimit>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let body = read_body(&req, payload, limit.0).await?;
    let stripe = &state.settings.stripe;
    let signature = req
        .headers()
        .get("Stripe-Signature")
        // Present but not text is a bad signature, not a missing one.
        .map(|v| v.to_str().unwrap_or(""));
    let now = chrono::Utc::now().timestamp();
    let (event, new) = verify_request(
        signature,
        &body,
        &stripe.webhook_secrets,
        stripe.webhook_tolerance_secs,
        now,
    )
    .map_err(|refusal| {
        tracing::warn!(code = refusal.code(), reason = %refusal, "webhook refused");
        facture_actors::metrics::webhook_outcome(refusal.code());
        ApiError::bad_request(refusal.code(), refusal.to_string())
    })?;
    facture_actors::metrics::enqueued(facture_actors::metrics::ActorKind::WebhookReceiver);
    let appended = facture_actors::webhook_receiver::append(&state.engine.receiver, new)
        .await
        .map_err(|e| {
            facture_actors::metrics::webhook_outcome("unavailable");
            ApiError::unavailable(e.to_string())
        })?;
    let answer = match appended {
        Appended::Inserted(_) => {
            facture_actors::metrics::webhook_outcome("accepted");
            tracing::info!(event = %event.id, r#type = %event.event_type, "webhook accepted");
            HttpResponse::Ok().json(json!({ "received": true }))
        }
        Appended::Duplicate => {
            facture_actors::metrics::webhook_outcome("duplicate");
            tracing::info!(event = %event.id, "webhook duplicate");
            HttpResponse::Ok().json(json!({ "received": true, "duplicate": true }))
        }
    };
    facture_actors::metrics::ack_latency(started.elapsed());
    Ok(answer)
}
