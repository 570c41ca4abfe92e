//! `/invoices`: a signed-in customer's own invoices (list, details, PDF). Another
//! customer's invoice answers 404, exactly like one that does not exist, so ids reveal
//! nothing. ADMIN users see every invoice here too.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use facture_core::catalog::{self, InvoiceDetails};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::admin_invoices::{
    listing_params, load_details, pdf_response, InvoiceDetail, InvoiceItem, InvoiceList,
};
use crate::routes::openapi::RouteDef;
use crate::routes::pagination::{parse_id, ErrorBody, Pagination};
use crate::startup::AppState;

pub fn routes() -> Vec<RouteDef> {
    vec![
        RouteDef::new(Method::GET, "/invoices", |r| r.to(list)),
        RouteDef::new(Method::GET, "/invoices/{id}", |r| r.to(details)),
        RouteDef::new(Method::GET, "/invoices/{id}/download", |r| r.to(download)),
    ]
}

/// The invoice if `user` may see it; 404 otherwise (whether it exists or not).
async fn visible(
    state: &AppState,
    user: &AuthUser,
    raw_id: &str,
) -> Result<InvoiceDetails, ApiError> {
    let id = parse_id(raw_id)?;
    let not_found = || ApiError::not_found("not_found", format!("invoice {id} not found"));
    let details = load_details(state, &id).await.map_err(|e| {
        if e.status == actix_web::http::StatusCode::NOT_FOUND {
            not_found()
        } else {
            e
        }
    })?;
    if user.is_admin() || details.order.user_id == user.id {
        Ok(details)
    } else {
        Err(not_found())
    }
}

/// The signed-in customer's invoices, newest first (an ADMIN sees every invoice).
#[utoipa::path(
    get,
    path = "/invoices",
    tag = "customer",
    security(("bearer" = [])),
    params(
        ("page" = Option<u32>, Query, description = "Page, from 1"),
        ("limit" = Option<u32>, Query, description = "1..=100 (default 20)"),
        ("status" = Option<String>, Query, description = "GENERATED, SENT, PAID, OVERDUE or CANCELLED"),
        ("sortBy" = Option<String>, Query, description = "createdAt (default), amount, number or status"),
        ("sortOrder" = Option<String>, Query, description = "asc or desc (default)"),
    ),
    responses(
        (status = 200, description = "A page of the customer's invoices", body = InvoiceList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    )
)]
pub async fn list(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (mut filter, sort, page) = listing_params(&req, false)?;
    if !user.is_admin() {
        filter.customer_id = Some(user.id.clone());
    }
    let (lines, total) = catalog::list_invoices(&state.db, &filter, sort, page).await?;
    Ok(HttpResponse::Ok().json(InvoiceList {
        invoices: lines.into_iter().map(InvoiceItem::from).collect(),
        pagination: Pagination::new(page, total),
    }))
}

/// One of the customer's invoices, with its order.
#[utoipa::path(
    get,
    path = "/invoices/{id}",
    tag = "customer",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "The invoice", body = InvoiceDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such invoice, or not the caller's", body = ErrorBody),
    )
)]
pub async fn details(
    user: AuthUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let details = visible(&state, &user, &path).await?;
    Ok(HttpResponse::Ok().json(InvoiceDetail::new(details, None)))
}

/// The PDF of one of the customer's invoices.
#[utoipa::path(
    get,
    path = "/invoices/{id}/download",
    tag = "customer",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "The PDF, as an attachment named `<number>.pdf`", content_type = "application/pdf"),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`, or `file_missing`", body = ErrorBody),
        (status = 409, description = "`file_corrupted`", body = ErrorBody),
    )
)]
pub async fn download(
    user: AuthUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let details = visible(&state, &user, &path).await?;
    pdf_response(&state, &details.invoice).await
}
