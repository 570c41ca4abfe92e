//! The read side of the admin and customer APIs: invoice listings (filter, search, sort,
//! pages), invoice details with their order and customer, invoice statistics, and the
//! webhook event log. One query per need, written once for both engines.
//!
//! Search terms are always bound parameters: `%`, `_` and `\` in a term are escaped and the
//! pattern carries an explicit `ESCAPE '\'`, so a term matches literally on SQLite and on
//! PostgreSQL alike. Matching is case-insensitive through `lower()` on both sides (ASCII
//! letters only on SQLite, whose `lower()` ignores other scripts).

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

use crate::db::models::{Commande, Invoice, User, WebhookEvent};
use crate::db::schema::{commandes, invoices, users, webhook_events};
use crate::db::{Db, DbError};
use crate::invoices::InvoiceStatus;
use crate::with_conn;

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// What an invoice listing keeps.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub status: Option<InvoiceStatus>,
    /// Matched against the invoice number, the order title, the customer's email and name.
    pub search: Option<String>,
    /// Only the invoices of this customer's orders.
    pub customer_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    CreatedAt,
    Amount,
    Number,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    /// Newest first.
    fn default() -> Self {
        Sort {
            key: SortKey::CreatedAt,
            descending: true,
        }
    }
}

/// A page request: `page` starts at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub limit: u32,
}

impl PageRequest {
    pub fn offset(self) -> i64 {
        i64::from(self.page.max(1) - 1) * i64::from(self.limit)
    }
}

/// The order fields a listing shows.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = commandes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct OrderSummary {
    pub id: String,
    pub user_id: String,
    pub titre: String,
    pub statut: String,
}

/// The customer fields a listing shows.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CustomerSummary {
    pub id: String,
    pub prenom: String,
    pub nom: String,
    pub email: String,
}

/// One line of an invoice listing.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    pub invoice: Invoice,
    pub order: OrderSummary,
    pub customer: CustomerSummary,
}

/// `term` as a LIKE pattern matching it anywhere, literally, lowercased (escape: `\`).
pub fn contains_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for ch in term.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// The invoices ⋈ commandes ⋈ users query, boxed for `$conn`'s backend, with the filter
/// applied.
macro_rules! filtered_invoices {
    ($filter:expr, $pattern:expr) => {{
        let mut q = invoices::table
            .inner_join(commandes::table.inner_join(users::table))
            .into_boxed();
        if let Some(status) = $filter.status {
            q = q.filter(invoices::status.eq(status.as_str()));
        }
        if let Some(customer) = &$filter.customer_id {
            q = q.filter(commandes::user_id.eq(customer.clone()));
        }
        if let Some(p) = $pattern {
            q = q.filter(
                lower(invoices::number)
                    .like(p.clone())
                    .escape('\\')
                    .or(lower(commandes::titre).like(p.clone()).escape('\\'))
                    .or(lower(users::email).like(p.clone()).escape('\\'))
                    .or(lower(users::prenom.concat(" ").concat(users::nom))
                        .like(p.clone())
                        .escape('\\')),
            );
        }
        q
    }};
}

/// A page of invoices and the number of invoices matching the filter.
pub async fn list_invoices(
    db: &Db,
    filter: &InvoiceFilter,
    sort: Sort,
    page: PageRequest,
) -> Result<(Vec<InvoiceLine>, i64), DbError> {
    let pattern = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(contains_pattern);
    let pattern = pattern.as_ref();
    let rows: Vec<(Invoice, OrderSummary, CustomerSummary)> = with_conn!(db, |conn| {
        let q = filtered_invoices!(filter, pattern);
        let q = match (sort.key, sort.descending) {
            (SortKey::CreatedAt, false) => q.order_by(invoices::created_at.asc()),
            (SortKey::CreatedAt, true) => q.order_by(invoices::created_at.desc()),
            (SortKey::Amount, false) => q.order_by(invoices::amount_cents.asc()),
            (SortKey::Amount, true) => q.order_by(invoices::amount_cents.desc()),
            // Numbers sort by (year, sequence): the chronological order of issue.
            (SortKey::Number, false) => q
                .order_by(invoices::year.asc())
                .then_order_by(invoices::sequence.asc()),
            (SortKey::Number, true) => q
                .order_by(invoices::year.desc())
                .then_order_by(invoices::sequence.desc()),
            (SortKey::Status, false) => q.order_by(invoices::status.asc()),
            (SortKey::Status, true) => q.order_by(invoices::status.desc()),
        };
        // A total order, so pages never overlap or skip rows.
        let q = if sort.descending {
            q.then_order_by(invoices::issued_at.desc())
                .then_order_by(invoices::id.desc())
        } else {
            q.then_order_by(invoices::issued_at.asc())
                .then_order_by(invoices::id.asc())
        };
        q.select((
            Invoice::as_select(),
            OrderSummary::as_select(),
            CustomerSummary::as_select(),
        ))
        .limit(i64::from(page.limit))
        .offset(page.offset())
        .load(conn)
        .await
    })?;
    let total: i64 = with_conn!(db, |conn| {
        filtered_invoices!(filter, pattern)
            .count()
            .get_result(conn)
            .await
    })?;
    let lines = rows
        .into_iter()
        .map(|(invoice, order, customer)| InvoiceLine {
            invoice,
            order,
            customer,
        })
        .collect();
    Ok((lines, total))
}

/// An invoice with its order and customer.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceDetails {
    pub invoice: Invoice,
    pub order: Commande,
    pub customer: User,
}

pub async fn invoice_details(db: &Db, id: &str) -> Result<Option<InvoiceDetails>, DbError> {
    let row: Option<(Invoice, Commande, User)> = with_conn!(db, |conn| {
        invoices::table
            .inner_join(commandes::table.inner_join(users::table))
            .filter(invoices::id.eq(id))
            .select((
                Invoice::as_select(),
                Commande::as_select(),
                User::as_select(),
            ))
            .first(conn)
            .await
            .optional()
    })?;
    Ok(row.map(|(invoice, order, customer)| InvoiceDetails {
        invoice,
        order,
        customer,
    }))
}

/// Count and amount of the invoices in one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusTotals {
    pub status: InvoiceStatus,
    pub count: i64,
    pub amount_cents: i64,
}

/// Figures over every invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceStats {
    /// One entry per status, in [`InvoiceStatus::ALL`] order (zeros included).
    pub by_status: Vec<StatusTotals>,
    /// Invoices with a stored PDF, and the bytes they take.
    pub files: i64,
    pub files_bytes: i64,
}

impl InvoiceStats {
    pub fn total(&self) -> i64 {
        self.by_status.iter().map(|s| s.count).sum()
    }

    pub fn count(&self, status: InvoiceStatus) -> i64 {
        self.by_status
            .iter()
            .find(|s| s.status == status)
            .map_or(0, |s| s.count)
    }

    /// The amount invoiced: every invoice except cancelled ones.
    pub fn amount_invoiced_cents(&self) -> i64 {
        self.by_status
            .iter()
            .filter(|s| s.status != InvoiceStatus::Cancelled)
            .map(|s| s.amount_cents)
            .sum()
    }

    /// Average stored PDF size in bytes (rounded down; 0 without files).
    pub fn average_file_bytes(&self) -> i64 {
        if self.files == 0 {
            0
        } else {
            self.files_bytes / self.files
        }
    }
}

/// `SUM` of a BIGINT column as BIGINT on both engines (PostgreSQL's is NUMERIC).
const SUM_AMOUNT: &str = "CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT)";
const SUM_PDF_SIZE: &str = "CAST(COALESCE(SUM(pdf_size), 0) AS BIGINT)";

pub async fn invoice_stats(db: &Db) -> Result<InvoiceStats, DbError> {
    let rows: Vec<(String, i64, i64)> = with_conn!(db, |conn| {
        invoices::table
            .group_by(invoices::status)
            .select((invoices::status, count_star(), sql::<BigInt>(SUM_AMOUNT)))
            .load(conn)
            .await
    })?;
    let (files, files_bytes): (i64, i64) = with_conn!(db, |conn| {
        invoices::table
            .filter(invoices::pdf_path.is_not_null())
            .select((count_star(), sql::<BigInt>(SUM_PDF_SIZE)))
            .first(conn)
            .await
    })?;
    let mut by_status: Vec<StatusTotals> = InvoiceStatus::ALL
        .into_iter()
        .map(|status| StatusTotals {
            status,
            count: 0,
            amount_cents: 0,
        })
        .collect();
    for (status, count, amount_cents) in rows {
        let status = InvoiceStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("invoice status {status}")))?;
        if let Some(entry) = by_status.iter_mut().find(|s| s.status == status) {
            entry.count += count;
            entry.amount_cents += amount_cents;
        }
    }
    Ok(InvoiceStats {
        by_status,
        files,
        files_bytes,
    })
}

/// What a webhook event listing keeps.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// One of [`crate::events::status::ALL`].
    pub status: Option<String>,
    /// The Stripe event type, exactly (`checkout.session.completed`).
    pub event_type: Option<String>,
}

/// A webhook event without its payload.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = webhook_events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct EventSummary {
    pub id: String,
    pub stripe_event_id: String,
    pub event_type: String,
    pub received_at: chrono::NaiveDateTime,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub processed_at: Option<chrono::NaiveDateTime>,
    pub session_id: Option<String>,
    pub commande_id: Option<String>,
}

macro_rules! filtered_events {
    ($filter:expr) => {{
        let mut q = webhook_events::table.into_boxed();
        if let Some(status) = &$filter.status {
            q = q.filter(webhook_events::status.eq(status.clone()));
        }
        if let Some(t) = &$filter.event_type {
            q = q.filter(webhook_events::event_type.eq(t.clone()));
        }
        q
    }};
}

/// A page of webhook events, newest first, and the number matching.
pub async fn list_events(
    db: &Db,
    filter: &EventFilter,
    page: PageRequest,
) -> Result<(Vec<EventSummary>, i64), DbError> {
    let rows = with_conn!(db, |conn| {
        filtered_events!(filter)
            .order_by(webhook_events::received_at.desc())
            .then_order_by(webhook_events::id.desc())
            .select(EventSummary::as_select())
            .limit(i64::from(page.limit))
            .offset(page.offset())
            .load(conn)
            .await
    })?;
    let total: i64 = with_conn!(db, |conn| {
        filtered_events!(filter).count().get_result(conn).await
    })?;
    Ok((rows, total))
}

pub async fn event(db: &Db, id: &str) -> Result<Option<WebhookEvent>, DbError> {
    crate::events::get(db, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_like_wildcards() {
        assert_eq!(contains_pattern("FAC-2026"), "%fac-2026%");
        assert_eq!(contains_pattern("100%"), "%100\\%%");
        assert_eq!(contains_pattern("a_b\\c"), "%a\\_b\\\\c%");
        assert_eq!(contains_pattern("l'\"É"), "%l'\"é%");
    }
}
