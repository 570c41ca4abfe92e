//! Every route, mounted in one place.

pub mod admin_invoices;
pub mod admin_ops;
pub mod auth;
pub mod checkout;
pub mod customer_invoices;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod webhook;

use actix_web::web;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig, webhook_body_limit: usize) {
    cfg.service(health::health)
        .service(health::ready)
        .service(webhook::scope(webhook_body_limit));
    // Checkout: /payments/create-checkout-session, /payments/guest-checkout, /payments/services.
    checkout::configure(cfg);
    // Auth, admin and customer APIs, and /openapi.json (the list lives in openapi.rs).
    openapi::configure(cfg);
}

/// Unknown routes answer in the project's error shape.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
