//! `/admin/factures`: the eight invoice endpoints for ADMIN users: list (filter, search,
//! sort, pages), stats, details, PDF download, regenerate, resend, status change, and
//! cancellation (DELETE).

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use facture_core::catalog::{self, InvoiceDetails, InvoiceFilter, InvoiceLine, Sort, SortKey};
use facture_core::db::models::{EmailDelivery, Invoice};
use facture_core::invoices::{self, InvoiceStatus};
use facture_core::mail::Deliveries;
use facture_core::money::Cents;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::routes::openapi::RouteDef;
use crate::routes::pagination::{
    engine_error, iso, parse_id, parse_json, ErrorBody, Pagination, QueryParams,
};
use crate::startup::AppState;

pub fn routes() -> Vec<RouteDef> {
    vec![
        RouteDef::new(Method::GET, "/admin/factures", |r| r.to(list)),
        // Before `/{id}`: `stats` is not an id.
        RouteDef::new(Method::GET, "/admin/factures/stats", |r| r.to(stats)),
        RouteDef::new(Method::GET, "/admin/factures/{id}", |r| r.to(details)),
        RouteDef::new(Method::GET, "/admin/factures/{id}/download", |r| {
            r.to(download)
        }),
        RouteDef::new(Method::POST, "/admin/factures/{id}/regenerate", |r| {
            r.to(regenerate)
        }),
        RouteDef::new(Method::POST, "/admin/factures/{id}/resend", |r| {
            r.to(resend)
        }),
        RouteDef::new(Method::PUT, "/admin/factures/{id}", |r| r.to(update_status)),
        RouteDef::new(Method::DELETE, "/admin/factures/{id}", |r| r.to(cancel)),
    ]
}

// ---------------------------------------------------------------------------------------
// Shapes (shared with the customer routes)

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRef {
    pub id: String,
    pub prenom: String,
    pub nom: String,
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderRef {
    pub id: String,
    pub titre: String,
    pub statut: String,
    pub client: ClientRef,
}

/// One invoice in a listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceItem {
    pub id: String,
    /// `FAC-2026-000042`.
    pub number: String,
    /// Tax-inclusive amount, in cents.
    pub amount: i64,
    /// `1 234,56 €` (no-break spaces).
    pub amount_formatted: String,
    /// GENERATED, SENT, PAID, OVERDUE or CANCELLED.
    pub status: String,
    /// A PDF is recorded for the invoice (its file is checked on download).
    pub pdf_available: bool,
    pub created_at: String,
    pub issued_at: String,
    pub commande: OrderRef,
}

impl From<InvoiceLine> for InvoiceItem {
    fn from(line: InvoiceLine) -> Self {
        let InvoiceLine {
            invoice,
            order,
            customer,
        } = line;
        InvoiceItem {
            pdf_available: pdf_available(&invoice),
            amount_formatted: Cents(invoice.amount_cents).format_fr(),
            id: invoice.id,
            number: invoice.number,
            amount: invoice.amount_cents,
            status: invoice.status,
            created_at: iso(invoice.created_at),
            issued_at: iso(invoice.issued_at),
            commande: OrderRef {
                id: order.id,
                titre: order.titre,
                statut: order.statut,
                client: ClientRef {
                    id: customer.id,
                    prenom: customer.prenom,
                    nom: customer.nom,
                    email: customer.email,
                },
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceList {
    pub invoices: Vec<InvoiceItem>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetail {
    pub id: String,
    pub titre: String,
    pub description: String,
    pub statut: String,
    pub payment_status: String,
    pub amount: i64,
    pub currency: String,
    pub is_guest: bool,
    pub paid_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientDetail {
    pub id: String,
    pub prenom: String,
    pub nom: String,
    pub email: String,
    pub telephone: Option<String>,
    pub adresse: Option<String>,
    pub is_active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryItem {
    pub id: String,
    /// `payment_confirmation`, `invoice_resent`, `account_activation`...
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    /// queued, sent or failed.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub invoice_id: Option<String>,
    pub commande_id: Option<String>,
    pub sent_at: Option<String>,
    pub created_at: String,
}

impl From<EmailDelivery> for DeliveryItem {
    fn from(d: EmailDelivery) -> Self {
        DeliveryItem {
            id: d.id,
            kind: d.kind,
            recipient: d.recipient,
            subject: d.subject,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            invoice_id: d.invoice_id,
            commande_id: d.commande_id,
            sent_at: d.sent_at.map(iso),
            created_at: iso(d.created_at),
        }
    }
}

/// An invoice with its order and customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceDetail {
    pub id: String,
    pub number: String,
    /// Tax-inclusive (TTC), in cents.
    pub amount: i64,
    pub amount_formatted: String,
    /// Tax-exclusive (HT), in cents.
    pub amount_ht: i64,
    /// VAT (TVA), in cents.
    pub tax_amount: i64,
    /// VAT rate in basis points (2000 = 20 %).
    pub tax_rate_bp: i32,
    pub status: String,
    /// The statuses this invoice may be moved to with PUT.
    pub allowed_transitions: Vec<String>,
    pub pdf_available: bool,
    pub pdf_sha256: Option<String>,
    pub pdf_size: Option<i64>,
    pub issued_at: String,
    pub due_at: String,
    pub paid_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub commande: OrderDetail,
    pub client: ClientDetail,
    /// The mails about this order (ADMIN only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryItem>>,
}

impl InvoiceDetail {
    pub fn new(details: InvoiceDetails, deliveries: Option<Vec<EmailDelivery>>) -> Self {
        let InvoiceDetails {
            invoice,
            order,
            customer,
        } = details;
        let allowed_transitions = InvoiceStatus::parse(&invoice.status)
            .map(|current| {
                InvoiceStatus::ALL
                    .into_iter()
                    .filter(|next| *next != current && current.can_become(*next))
                    .map(|s| s.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        InvoiceDetail {
            pdf_available: pdf_available(&invoice),
            amount_formatted: Cents(invoice.amount_cents).format_fr(),
            amount_ht: invoice.amount_cents - invoice.tax_cents,
            allowed_transitions,
            id: invoice.id,
            number: invoice.number,
            amount: invoice.amount_cents,
            tax_amount: invoice.tax_cents,
            tax_rate_bp: invoice.tax_rate_bp,
            status: invoice.status,
            pdf_sha256: invoice.pdf_sha256,
            pdf_size: invoice.pdf_size,
            issued_at: iso(invoice.issued_at),
            due_at: iso(invoice.due_at),
            paid_at: invoice.paid_at.map(iso),
            created_at: iso(invoice.created_at),
            updated_at: iso(invoice.updated_at),
            commande: OrderDetail {
                id: order.id,
                titre: order.titre,
                description: order.description,
                statut: order.statut,
                payment_status: order.payment_status,
                amount: order.amount_cents,
                currency: order.currency,
                is_guest: order.is_guest,
                paid_at: order.paid_at.map(iso),
                created_at: iso(order.created_at),
            },
            client: ClientDetail {
                id: customer.id,
                prenom: customer.prenom,
                nom: customer.nom,
                email: customer.email,
                telephone: customer.telephone,
                adresse: customer.adresse,
                is_active: customer.is_active,
            },
            deliveries: deliveries.map(|d| d.into_iter().map(DeliveryItem::from).collect()),
        }
    }
}

fn pdf_available(invoice: &Invoice) -> bool {
    invoice.pdf_path.is_some() && invoice.pdf_sha256.is_some()
}

fn invoice_not_found(id: &str) -> ApiError {
    ApiError::not_found("not_found", format!("invoice {id} not found"))
}

/// The invoice with its order and customer, or 404.
pub async fn load_details(state: &AppState, id: &str) -> Result<InvoiceDetails, ApiError> {
    catalog::invoice_details(&state.db, id)
        .await?
        .ok_or_else(|| invoice_not_found(id))
}

async fn admin_detail(state: &AppState, id: &str) -> Result<InvoiceDetail, ApiError> {
    let details = load_details(state, id).await?;
    let deliveries = Deliveries::new(state.db.clone())
        .list_for_commande(&details.order.id)
        .await?;
    Ok(InvoiceDetail::new(details, Some(deliveries)))
}

// ---------------------------------------------------------------------------------------
// Listing

const STATUS_VALUES: [&str; 5] = ["GENERATED", "SENT", "PAID", "OVERDUE", "CANCELLED"];
const SORT_VALUES: [&str; 4] = ["createdAt", "amount", "number", "status"];
const MAX_SEARCH_CHARS: usize = 200;

/// The listing parameters: page, limit, status, sortBy, sortOrder, and `search` when
/// `with_search`.
pub fn listing_params(
    req: &HttpRequest,
    with_search: bool,
) -> Result<(InvoiceFilter, Sort, facture_core::catalog::PageRequest), ApiError> {
    let params = QueryParams::parse(req)?;
    let page = params.page_request()?;
    let status = params.one_of("status", &STATUS_VALUES, InvoiceStatus::parse)?;
    let key = params
        .one_of("sortBy", &SORT_VALUES, |v| match v {
            "createdAt" => Some(SortKey::CreatedAt),
            "amount" => Some(SortKey::Amount),
            "number" => Some(SortKey::Number),
            "status" => Some(SortKey::Status),
            _ => None,
        })?
        .unwrap_or_default();
    let descending = params
        .one_of("sortOrder", &["asc", "desc"], |v| match v {
            "asc" => Some(false),
            "desc" => Some(true),
            _ => None,
        })?
        .unwrap_or(true);
    let search = if with_search {
        params.text("search", MAX_SEARCH_CHARS)?
    } else {
        None
    };
    Ok((
        InvoiceFilter {
            status,
            search,
            customer_id: None,
        },
        Sort { key, descending },
        page,
    ))
}

/// Lists invoices, newest first by default.
#[utoipa::path(
    get,
    path = "/admin/factures",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(
        ("page" = Option<u32>, Query, description = "Page, from 1 (default 1)"),
        ("limit" = Option<u32>, Query, description = "Rows per page, 1..=100 (default 20)"),
        ("status" = Option<String>, Query, description = "GENERATED, SENT, PAID, OVERDUE or CANCELLED"),
        ("search" = Option<String>, Query, description = "Case-insensitive, literal: invoice number, order title, customer email or name"),
        ("sortBy" = Option<String>, Query, description = "createdAt (default), amount, number or status"),
        ("sortOrder" = Option<String>, Query, description = "asc or desc (default)"),
    ),
    responses(
        (status = 200, description = "A page of invoices", body = InvoiceList),
        (status = 400, description = "`invalid_query`, naming the parameter", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an ADMIN", body = ErrorBody),
    )
)]
pub async fn list(
    _admin: AdminUser,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (filter, sort, page) = listing_params(&req, true)?;
    let (lines, total) = catalog::list_invoices(&state.db, &filter, sort, page).await?;
    Ok(HttpResponse::Ok().json(InvoiceList {
        invoices: lines.into_iter().map(InvoiceItem::from).collect(),
        pagination: Pagination::new(page, total),
    }))
}

// ---------------------------------------------------------------------------------------
// Stats

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCount {
    pub count: i64,
    /// Cents.
    pub montant: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileStats {
    /// Invoices with a stored PDF.
    pub count: i64,
    /// Average PDF size in bytes (0 without files).
    pub average_size: i64,
    pub total_size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceStatsView {
    /// Every invoice, cancelled ones included.
    pub total: i64,
    /// The amount invoiced in cents: every invoice except CANCELLED ones.
    pub montant_total: i64,
    /// `montantTotal` in French format: `15 847,32 €`.
    pub montant_total_formate: String,
    /// Count and amount per status (every status present, zeros included).
    #[schema(value_type = Object)]
    pub par_statut: std::collections::BTreeMap<String, StatusCount>,
    pub fichiers: FileStats,
    /// Share of invoices PAID or SENT (invoices are issued once paid, so SENT ones are
    /// paid too), in percent of `total`, rounded to one decimal; 0 without invoices.
    pub taux_paiement: f64,
}

/// Invoice figures.
#[utoipa::path(
    get,
    path = "/admin/factures/stats",
    tag = "admin-invoices",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Figures over every invoice", body = InvoiceStatsView),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    )
)]
pub async fn stats(
    _admin: AdminUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let s = catalog::invoice_stats(&state.db).await?;
    let total = s.total();
    let paid = s.count(InvoiceStatus::Paid) + s.count(InvoiceStatus::Sent);
    let taux_paiement = if total == 0 {
        0.0
    } else {
        // Integer arithmetic to one decimal, rounded half up: 2 of 3 → 66.7.
        let tenths = (paid * 1000 + total / 2) / total;
        tenths as f64 / 10.0
    };
    let montant_total = s.amount_invoiced_cents();
    Ok(HttpResponse::Ok().json(InvoiceStatsView {
        total,
        montant_total,
        montant_total_formate: Cents(montant_total).format_fr(),
        par_statut: s
            .by_status
            .iter()
            .map(|t| {
                (
                    t.status.as_str().to_owned(),
                    StatusCount {
                        count: t.count,
                        montant: t.amount_cents,
                    },
                )
            })
            .collect(),
        fichiers: FileStats {
            count: s.files,
            average_size: s.average_file_bytes(),
            total_size: s.files_bytes,
        },
        taux_paiement,
    }))
}

// ---------------------------------------------------------------------------------------
// One invoice

/// An invoice with its order, its customer and the order's mails.
#[utoipa::path(
    get,
    path = "/admin/factures/{id}",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "The invoice", body = InvoiceDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn details(
    _admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(admin_detail(&state, &id).await?))
}

/// The stored PDF, checked against the SHA-256 recorded on the row before it is sent.
pub async fn pdf_response(state: &AppState, invoice: &Invoice) -> Result<HttpResponse, ApiError> {
    if !pdf_available(invoice) {
        return Err(ApiError::not_found(
            "file_missing",
            format!("invoice {} has no stored PDF yet", invoice.number),
        ));
    }
    let bytes = state.engine.read_pdf(invoice).await.map_err(engine_error)?;
    let filename: String = invoice
        .number
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}.pdf\""),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}

/// Downloads the invoice's PDF.
#[utoipa::path(
    get,
    path = "/admin/factures/{id}/download",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "The PDF, as an attachment named `<number>.pdf`", content_type = "application/pdf"),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`, or `file_missing`: the file is gone", body = ErrorBody),
        (status = 409, description = "`file_corrupted`: the file no longer matches its SHA-256", body = ErrorBody),
    )
)]
pub async fn download(
    _admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let invoice = invoices::find(&state.db, &id)
        .await?
        .ok_or_else(|| invoice_not_found(&id))?;
    pdf_response(&state, &invoice).await
}

/// Renders the PDF again from the invoice's stored data (same number, same content),
/// replaces the file and its SHA-256, and answers when done.
#[utoipa::path(
    post,
    path = "/admin/factures/{id}/regenerate",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "Regenerated", body = InvoiceDetail),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`: retry later", body = ErrorBody),
    )
)]
pub async fn regenerate(
    admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let invoice = state.engine.regenerate(&id).await.map_err(engine_error)?;
    tracing::info!(invoice = %invoice.number, admin = %admin.0.id, "invoice PDF regenerated");
    Ok(HttpResponse::Ok().json(admin_detail(&state, &id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResult {
    pub delivery_id: String,
    /// queued, sent or failed.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The delivery had been sent already: nothing was sent this time.
    pub already_sent: bool,
}

impl From<facture_core::mail::DeliveryOutcome> for DeliveryResult {
    fn from(o: facture_core::mail::DeliveryOutcome) -> Self {
        DeliveryResult {
            delivery_id: o.delivery_id,
            status: o.status.as_str().to_owned(),
            attempts: o.attempts,
            last_error: o.last_error,
            already_sent: o.already_sent,
        }
    }
}

/// Mails the invoice to its customer again, PDF attached (a new delivery each time).
/// A cancelled invoice is not resent.
#[utoipa::path(
    post,
    path = "/admin/factures/{id}/resend",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "How the delivery went (`status` sent or failed)", body = DeliveryResult),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found` or `file_missing`", body = ErrorBody),
        (status = 409, description = "`invoice_cancelled` or `file_corrupted`", body = ErrorBody),
        (status = 503, description = "`unavailable`: retry later", body = ErrorBody),
    )
)]
pub async fn resend(
    admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let invoice = invoices::find(&state.db, &id)
        .await?
        .ok_or_else(|| invoice_not_found(&id))?;
    if invoice.status == InvoiceStatus::Cancelled.as_str() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invoice_cancelled",
            format!(
                "invoice {} is cancelled: it is not sent again",
                invoice.number
            ),
        ));
    }
    let outcome = state.engine.resend(&id).await.map_err(engine_error)?;
    tracing::info!(
        invoice = %invoice.number,
        admin = %admin.0.id,
        delivery = %outcome.delivery_id,
        status = %outcome.status,
        "invoice resent"
    );
    Ok(HttpResponse::Ok().json(DeliveryResult::from(outcome)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusUpdate {
    /// GENERATED, SENT, PAID, OVERDUE or CANCELLED.
    pub status: String,
}

async fn change_status(
    state: &AppState,
    id: &str,
    next: InvoiceStatus,
) -> Result<(InvoiceStatus, Invoice), ApiError> {
    let current = invoices::find(&state.db, id)
        .await?
        .ok_or_else(|| invoice_not_found(id))?;
    let from = InvoiceStatus::parse(&current.status)
        .ok_or_else(|| ApiError::internal(format!("invoice {id} has status {}", current.status)))?;
    match invoices::set_status(&state.db, id, next).await {
        Ok(Ok(invoice)) => Ok((from, invoice)),
        Ok(Err(now)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!(
                "invoice {} cannot go from {} to {}",
                current.number,
                now.as_str(),
                next.as_str()
            ),
        )),
        Err(e) if e.is_not_found() => Err(invoice_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// Changes the invoice's status, if the transition is allowed (CANCELLED is final; a
/// paid invoice never goes back to an unpaid status).
#[utoipa::path(
    put,
    path = "/admin/factures/{id}",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    request_body = StatusUpdate,
    responses(
        (status = 200, description = "The invoice as it is now", body = InvoiceDetail),
        (status = 400, description = "`invalid_id`, `invalid_body` or `invalid_status`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`, naming both statuses", body = ErrorBody),
    )
)]
pub async fn update_status(
    admin: AdminUser,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let update: StatusUpdate = parse_json(&body)?;
    let next = InvoiceStatus::parse(update.status.trim()).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_status",
            format!(
                "`{}` is not one of {}",
                update.status,
                STATUS_VALUES.join(", ")
            ),
        )
    })?;
    let (from, invoice) = change_status(&state, &id, next).await?;
    tracing::info!(
        invoice = %invoice.number,
        admin = %admin.0.id,
        from = from.as_str(),
        to = next.as_str(),
        "invoice status changed"
    );
    Ok(HttpResponse::Ok().json(admin_detail(&state, &id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    /// Says the invoice was cancelled, not deleted, and why.
    pub message: String,
    pub invoice: InvoiceDetail,
}

/// Cancels the invoice. It is NOT deleted: see the handler's comment.
#[utoipa::path(
    delete,
    path = "/admin/factures/{id}",
    tag = "admin-invoices",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Invoice id (UUID)")),
    responses(
        (status = 200, description = "Cancelled (status CANCELLED; row, number and PDF kept)", body = CancelResponse),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn cancel(
    admin: AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // French law (Code de commerce art. L123-22 and L441-9, CGI art. 242 nonies A and
    // 289) requires issued invoices to be numbered in one unbroken chronological sequence
    // and kept for ten years: an issued invoice may not be destroyed, and its number may
    // never be reused or leave a gap. So DELETE does not delete: it marks the invoice
    // CANCELLED and keeps the row, its number and its PDF. Refunding the customer is done
    // with a credit note (facture d'avoir), never by erasing the invoice.
    let id = parse_id(&path)?;
    let (from, invoice) = change_status(&state, &id, InvoiceStatus::Cancelled).await?;
    let message = if from == InvoiceStatus::Cancelled {
        format!("invoice {} was already cancelled", invoice.number)
    } else {
        format!(
            "invoice {} is cancelled, not deleted: French law forbids destroying an issued \
             invoice, so its row, number and PDF are kept (the number is never reused); \
             refund the customer with a credit note",
            invoice.number
        )
    };
    tracing::info!(invoice = %invoice.number, admin = %admin.0.id, "invoice cancelled");
    Ok(HttpResponse::Ok().json(CancelResponse {
        message,
        invoice: admin_detail(&state, &id).await?,
    }))
}
