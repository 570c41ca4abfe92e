//! Every route, mounted in one place.

pub mod health;

use actix_web::web;

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::health).service(health::ready);
}

/// Unknown routes answer in the project's error shape.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
