//! The API's routes as data, and the OpenAPI 3 document describing them
//! (`GET /openapi.json`).
//!
//! Every route of the auth, admin and customer APIs is declared once, as a [`RouteDef`]
//! (method, path, handler), by its module's `routes()`. [`configure`] registers exactly
//! that list, and the integration test `openapi` checks that the list, the routes mounted
//! elsewhere ([`OTHER_ROUTES`]) and the document's operations are the same set: a route
//! cannot be added without being documented, nor documented without existing.

use actix_web::http::Method;
use actix_web::{web, HttpResponse, Route};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::pagination::ErrorBody;
use super::{admin_invoices, admin_ops, auth, customer_invoices};

/// One route: registered by [`configure`], listed by [`api_routes`].
#[derive(Clone)]
pub struct RouteDef {
    pub method: Method,
    /// actix and OpenAPI syntax alike (`/admin/factures/{id}`).
    pub path: &'static str,
    /// Attaches the handler to a route already guarded by `method`.
    pub build: fn(Route) -> Route,
}

impl RouteDef {
    pub fn new(method: Method, path: &'static str, build: fn(Route) -> Route) -> Self {
        RouteDef {
            method,
            path,
            build,
        }
    }
}

impl std::fmt::Debug for RouteDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Every route this module family serves, in registration order (a literal segment
/// before a `{param}` one at the same place: `/admin/factures/stats` before `/{id}`).
pub fn api_routes() -> Vec<RouteDef> {
    let mut routes = auth::routes();
    routes.extend(admin_invoices::routes());
    routes.extend(admin_ops::routes());
    routes.extend(customer_invoices::routes());
    routes.push(RouteDef::new(Method::GET, "/openapi.json", |r| {
        r.to(openapi_json)
    }));
    routes
}

/// Routes mounted outside [`api_routes`] (`routes::configure`), documented here too.
/// (`/metrics` is here when served on the API port, the default.)
pub const OTHER_ROUTES: [(&str, &str); 7] = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("POST", "/payments/webhook"),
    ("POST", "/payments/create-checkout-session"),
    ("POST", "/payments/guest-checkout"),
    ("GET", "/payments/services"),
];

/// Registers [`api_routes`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    for def in api_routes() {
        let route = (def.build)(web::route().method(def.method.clone()));
        cfg.route(def.path, route);
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from POST /auth/login, as `Authorization: Bearer <token>`",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "facture",
        description = "Turns Stripe payments into legal French invoices. Errors answer \
                       `{\"error\": code, \"message\": text}`. Amounts are integer cents.",
    ),
    paths(
        health_doc,
        ready_doc,
        metrics_doc,
        webhook_doc,
        checkout_doc,
        guest_checkout_doc,
        services_doc,
        openapi_json,
        auth::login,
        auth::activate,
        admin_invoices::list,
        admin_invoices::stats,
        admin_invoices::details,
        admin_invoices::download,
        admin_invoices::regenerate,
        admin_invoices::resend,
        admin_invoices::update_status,
        admin_invoices::cancel,
        admin_ops::list_notifications,
        admin_ops::read_notification,
        admin_ops::notification_stream,
        admin_ops::list_events,
        admin_ops::event_details,
        admin_ops::replay_event,
        admin_ops::list_deliveries,
        admin_ops::retry_delivery,
        customer_invoices::list,
        customer_invoices::details,
        customer_invoices::download,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in, activate an account"),
        (name = "admin-invoices", description = "Invoices, for ADMIN users"),
        (name = "admin-ops", description = "Notifications, webhook events, mail deliveries, for ADMIN users"),
        (name = "customer", description = "A signed-in customer's own invoices"),
        (name = "payments", description = "Checkout and the Stripe webhook"),
        (name = "system", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `(METHOD, path)` of every operation in the document.
pub fn documented_operations(doc: &utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ];
        for (method, op) in ops {
            if op.is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "system",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json"))
)]
pub async fn openapi_json() -> HttpResponse {
    match document().to_json() {
        Ok(json) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(e)),
    }
}

// Routes served by other modules, documented here.

/// Liveness: 200 while the process serves requests.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, description = "Alive")))]
#[allow(dead_code)]
fn health_doc() {}

/// Readiness: 200 when the database answers and every migration is applied, else 503.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "system",
    responses((status = 200, description = "Ready"), (status = 503, description = "Not ready"))
)]
#[allow(dead_code)]
fn ready_doc() {}

/// Stripe's webhook: the raw body, verified against `Stripe-Signature`, stored durably,
/// then acknowledged; processing happens afterwards.
#[utoipa::path(
    post,
    path = "/payments/webhook",
    tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature header")),
    request_body(content = String, content_type = "application/json", description = "The Stripe event, exactly as Stripe sent it"),
    responses(
        (status = 200, description = "`{\"received\": true}` (with `\"duplicate\": true` for a redelivery)"),
        (status = 400, description = "Missing or invalid signature, or an unreadable event", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "Could not be stored now: Stripe retries", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn webhook_doc() {}

/// Prometheus metrics (text exposition format 0.0.4). Served on the API port unless
/// `metrics.port` is set.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "Every metric family", content_type = "text/plain"))
)]
#[allow(dead_code)]
fn metrics_doc() {}

/// A Stripe Checkout Session for the signed-in customer: `{commandeId}` pays one of their
/// unpaid orders, `{titre, description, amountCents}` creates the order first.
#[utoipa::path(
    post,
    path = "/payments/create-checkout-session",
    tag = "payments",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{commandeId}` or `{titre, description, amountCents}`"),
    responses(
        (status = 200, description = "`{sessionId, url, commandeId}`: redirect the customer to `url`"),
        (status = 400, description = "`invalid_body` or `invalid_field`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 502, description = "Stripe refused or failed", body = ErrorBody),
        (status = 503, description = "Stripe is not configured or unreachable", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn checkout_doc() {}

/// A guest order for one service of the price list, paid through Stripe Checkout; the
/// account is created when the payment arrives.
#[utoipa::path(
    post,
    path = "/payments/guest-checkout",
    tag = "payments",
    request_body(content = Object, description = "The guest's identity, the service id, and `consentementRgpd: true`"),
    responses(
        (status = 200, description = "`{sessionId, url}`: redirect the guest to `url`"),
        (status = 400, description = "`invalid_body` or `invalid_field`", body = ErrorBody),
        (status = 502, description = "Stripe refused or failed", body = ErrorBody),
        (status = 503, description = "Stripe is not configured or unreachable", body = ErrorBody),
    )
)]
#[allow(dead_code)]
fn guest_checkout_doc() {}

/// The price list guests order from.
#[utoipa::path(
    get,
    path = "/payments/services",
    tag = "payments",
    responses((status = 200, description = "`{currency, services: [{id, name, description, amountCents}]}`"))
)]
#[allow(dead_code)]
fn services_doc() {}
