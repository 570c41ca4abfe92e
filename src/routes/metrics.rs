//! GET /metrics: every family the engine records, in Prometheus text format. Served on the
//! API port, or alone on `metrics.port` when that is set (then not on the API port).

use actix_web::{get, web, HttpResponse};

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[get("/metrics")]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(crate::telemetry_metrics::render())
}

/// Mounts /metrics when this server is the one that serves it.
pub fn configure(cfg: &mut web::ServiceConfig, here: bool) {
    if here {
        cfg.service(metrics);
    }
}
