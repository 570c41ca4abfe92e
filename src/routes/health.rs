//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use crate::startup::AppState;

/// 200 while the process serves requests.
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// 200 only when the database answers and every migration is applied.
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await;
    let migrations = database && state.db.migrations_applied().await.unwrap_or(false);
    let body = json!({ "database": database, "migrations": migrations });
    if database && migrations {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
