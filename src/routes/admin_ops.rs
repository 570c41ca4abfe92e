//! Operations endpoints for ADMIN users: notifications (list, mark read, live stream of
//! server-sent events), the webhook event log (list, details, replay), and mail
//! deliveries (list, retry).

use std::time::Duration;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use facture_core::catalog::{self, EventFilter, EventSummary};
use facture_core::db::models::{Notification, WebhookEvent};
use facture_core::events;
use facture_core::mail::{Deliveries, DeliveryStatus};
use facture_core::notifications::NotificationStore;
use futures_util::stream;
use serde::Serialize;
use tokio::sync::broadcast;
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::routes::admin_invoices::{DeliveryItem, DeliveryResult};
use crate::routes::openapi::RouteDef;
use crate::routes::pagination::{engine_error, iso, parse_id, ErrorBody, Pagination, QueryParams};
use crate::startup::AppState;

pub fn routes() -> Vec<RouteDef> {
    vec![
        RouteDef::new(Method::GET, "/admin/notifications", |r| {
            r.to(list_notifications)
        }),
        RouteDef::new(Method::GET, "/admin/notifications/stream", |r| {
            r.to(notification_stream)
        }),
        RouteDef::new(Method::POST, "/admin/notifications/{id}/read", |r| {
            r.to(read_notification)
        }),
        RouteDef::new(Method::GET, "/admin/webhook-events", |r| r.to(list_events)),
        RouteDef::new(Method::GET, "/admin/webhook-events/{id}", |r| {
            r.to(event_details)
        }),
        RouteDef::new(Method::POST, "/admin/webhook-events/{id}/replay", |r| {
            r.to(replay_event)
        }),
        RouteDef::new(Method::GET, "/admin/deliveries", |r| r.to(list_deliveries)),
        RouteDef::new(Method::POST, "/admin/deliveries/{id}/retry", |r| {
            r.to(retry_delivery)
        }),
    ]
}

/// Stored JSON as JSON (or as the raw text, should it not parse).
fn json_or_text(raw: &str) -> serde_json::Value {
    serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_owned()))
}

// ---------------------------------------------------------------------------------------
// Notifications

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: String,
    /// PAYMENT, ORDER, ERROR, ACCOUNT or MAIL.
    pub kind: String,
    pub title: String,
    pub message: String,
    /// LOW, NORMAL or HIGH.
    pub priority: String,
    /// The domain event (`{"event": "payment_received", ...}`).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub is_read: bool,
    pub created_at: String,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            data: json_or_text(&n.data),
            id: n.id,
            kind: n.kind,
            title: n.title,
            message: n.message,
            priority: n.priority,
            is_read: n.is_read,
            created_at: iso(n.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationList {
    pub notifications: Vec<NotificationView>,
    pub pagination: Pagination,
    /// Unread notifications, over every page.
    pub unread_count: i64,
}

/// Notifications, newest first.
#[utoipa::path(
    get,
    path = "/admin/notifications",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(
        ("page" = Option<u32>, Query, description = "Page, from 1"),
        ("limit" = Option<u32>, Query, description = "1..=100 (default 20)"),
        ("unread" = Option<bool>, Query, description = "true: only unread ones"),
    ),
    responses(
        (status = 200, description = "A page of notifications", body = NotificationList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    )
)]
pub async fn list_notifications(
    _admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req)?;
    let page = params.page_request()?;
    let unread = params.boolean("unread")?.unwrap_or(false);
    let store = NotificationStore::new(state.db.clone());
    let (rows, total) = store.list(unread, page.page, page.limit).await?;
    let unread_count = store.unread_count().await?;
    Ok(HttpResponse::Ok().json(NotificationList {
        notifications: rows.into_iter().map(NotificationView::from).collect(),
        pagination: Pagination::new(page, total),
        unread_count,
    }))
}

/// Marks a notification read.
#[utoipa::path(
    post,
    path = "/admin/notifications/{id}/read",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notification id (UUID)")),
    responses(
        (status = 200, description = "The notification, read", body = NotificationView),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn read_notification(
    _admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let store = NotificationStore::new(state.db.clone());
    let not_found = || ApiError::not_found("not_found", format!("notification {id} not found"));
    if !store.mark_read(&id).await? {
        return Err(not_found());
    }
    let row = store.get(&id).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(NotificationView::from(row)))
}

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn sse_frame(notification: Notification) -> web::Bytes {
    let json = serde_json::to_string(&NotificationView::from(notification))
        .unwrap_or_else(|_| "{}".to_owned());
    web::Bytes::from(format!("data: {json}\n\n"))
}

/// New notifications as server-sent events: one `data: {json}` event per notification
/// (the same object as in the list), `: keep-alive` comments while idle. The stream starts
/// with a `: connected` comment, sent once the subscription is live.
#[utoipa::path(
    get,
    path = "/admin/notifications/stream",
    tag = "admin-ops",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream` of NotificationView objects", content_type = "text/event-stream"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    )
)]
pub async fn notification_stream(
    admin: AdminUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // Subscribed before the answer starts: nothing stored after the headers is missed.
    let receiver = state.engine.subscribe();
    tracing::info!(admin = %admin.0.id, "notification stream opened");
    struct Feed {
        receiver: broadcast::Receiver<Notification>,
        greeted: bool,
    }
    let feed = Feed {
        receiver,
        greeted: false,
    };
    let events = stream::unfold(feed, |mut feed| async move {
        if !feed.greeted {
            feed.greeted = true;
            return Some((
                Ok::<_, actix_web::Error>(web::Bytes::from_static(b": connected\n\n")),
                feed,
            ));
        }
        let frame = match tokio::time::timeout(KEEP_ALIVE, feed.receiver.recv()).await {
            Err(_) => web::Bytes::from_static(b": keep-alive\n\n"),
            Ok(Ok(notification)) => sse_frame(notification),
            Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                // A slow reader lost some: say so; they are in the list.
                web::Bytes::from(format!(
                    ": lagged {missed} notifications, see /admin/notifications\n\n"
                ))
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
        };
        Some((Ok(frame), feed))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

// ---------------------------------------------------------------------------------------
// Webhook events

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    pub stripe_event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// received, processed, failed, ignored or orphan.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub session_id: Option<String>,
    pub commande_id: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
}

impl From<EventSummary> for EventView {
    fn from(e: EventSummary) -> Self {
        EventView {
            id: e.id,
            stripe_event_id: e.stripe_event_id,
            event_type: e.event_type,
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error,
            session_id: e.session_id,
            commande_id: e.commande_id,
            received_at: iso(e.received_at),
            processed_at: e.processed_at.map(iso),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub events: Vec<EventView>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventView,
    /// The event exactly as Stripe sent it.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<WebhookEvent> for EventDetail {
    fn from(e: WebhookEvent) -> Self {
        EventDetail {
            payload: json_or_text(&e.payload),
            event: EventView {
                id: e.id,
                stripe_event_id: e.stripe_event_id,
                event_type: e.event_type,
                status: e.status,
                attempts: e.attempts,
                last_error: e.last_error,
                session_id: e.session_id,
                commande_id: e.commande_id,
                received_at: iso(e.received_at),
                processed_at: e.processed_at.map(iso),
            },
        }
    }
}

/// The webhook event log, newest first.
#[utoipa::path(
    get,
    path = "/admin/webhook-events",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(
        ("page" = Option<u32>, Query, description = "Page, from 1"),
        ("limit" = Option<u32>, Query, description = "1..=100 (default 20)"),
        ("status" = Option<String>, Query, description = "received, processed, failed, ignored or orphan"),
        ("type" = Option<String>, Query, description = "Stripe event type, exactly (`checkout.session.completed`)"),
    ),
    responses(
        (status = 200, description = "A page of events (without payloads)", body = EventList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    )
)]
pub async fn list_events(
    _admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req)?;
    let page = params.page_request()?;
    let status = params.one_of("status", &events::status::ALL, |v| {
        events::status::ALL
            .iter()
            .find(|s| **s == v)
            .map(|s| (*s).to_owned())
    })?;
    let event_type = params.text("type", 200)?;
    let filter = EventFilter { status, event_type };
    let (rows, total) = catalog::list_events(&state.db, &filter, page).await?;
    Ok(HttpResponse::Ok().json(EventList {
        events: rows.into_iter().map(EventView::from).collect(),
        pagination: Pagination::new(page, total),
    }))
}

/// One webhook event, with its payload.
#[utoipa::path(
    get,
    path = "/admin/webhook-events/{id}",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event row id (UUID), not Stripe's evt_ id")),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn event_details(
    _admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let event = catalog::event(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", format!("webhook event {id} not found")))?;
    Ok(HttpResponse::Ok().json(EventDetail::from(event)))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResult {
    pub id: String,
    /// `received`: queued to be processed again (idempotently: no second invoice).
    pub status: String,
}

/// Processes a stored event again (idempotent: it never creates a second invoice).
#[utoipa::path(
    post,
    path = "/admin/webhook-events/{id}/replay",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event row id (UUID)")),
    responses(
        (status = 202, description = "Queued again", body = ReplayResult),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the event is stored and the sweep will pick it up", body = ErrorBody),
    )
)]
pub async fn replay_event(
    admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    state.engine.replay_event(&id).await.map_err(engine_error)?;
    tracing::info!(event = %id, admin = %admin.0.id, "webhook event replayed");
    Ok(
        HttpResponse::build(StatusCode::ACCEPTED).json(ReplayResult {
            id,
            status: events::status::RECEIVED.to_owned(),
        }),
    )
}

// ---------------------------------------------------------------------------------------
// Deliveries

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryItem>,
    pub pagination: Pagination,
}

/// Mail deliveries, newest first.
#[utoipa::path(
    get,
    path = "/admin/deliveries",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(
        ("page" = Option<u32>, Query, description = "Page, from 1"),
        ("limit" = Option<u32>, Query, description = "1..=100 (default 20)"),
        ("status" = Option<String>, Query, description = "queued, sent or failed"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    _admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = QueryParams::parse(&req)?;
    let page = params.page_request()?;
    let status = params.one_of(
        "status",
        &["queued", "sent", "failed"],
        DeliveryStatus::parse,
    )?;
    let (rows, total) = Deliveries::new(state.db.clone())
        .list(status, page.page, page.limit)
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: rows.into_iter().map(DeliveryItem::from).collect(),
        pagination: Pagination::new(page, total),
    }))
}

/// Sends a delivery again, its content rebuilt from the database (an activation mail gets
/// a fresh token). A delivery already sent is not sent twice (`alreadySent`).
#[utoipa::path(
    post,
    path = "/admin/deliveries/{id}/retry",
    tag = "admin-ops",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Delivery id (UUID)")),
    responses(
        (status = 200, description = "How the retry went", body = DeliveryResult),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found` or `file_missing`", body = ErrorBody),
        (status = 409, description = "`unsupported`: this kind of mail cannot be rebuilt, or `file_corrupted`", body = ErrorBody),
        (status = 503, description = "`unavailable`: retry later", body = ErrorBody),
    )
)]
pub async fn retry_delivery(
    admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let outcome = state
        .engine
        .retry_delivery(&id)
        .await
        .map_err(engine_error)?;
    tracing::info!(
        delivery = %id,
        admin = %admin.0.id,
        status = %outcome.status,
        "delivery retried"
    );
    Ok(HttpResponse::Ok().json(DeliveryResult::from(outcome)))
}
