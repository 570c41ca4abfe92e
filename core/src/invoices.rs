//! Invoice rows and their gapless numbering.
//!
//! A number is allocated in the same transaction that inserts the invoice: the sequence
//! row is bumped with an upsert (`ON CONFLICT (year) DO UPDATE ... RETURNING`), which takes
//! the row lock on PostgreSQL and runs under SQLite's single writer. If the insert fails,
//! the bump rolls back with it, so a number is never skipped; once committed it is never
//! reused (invoices are cancelled, never deleted).

use chrono::{Datelike, Duration, NaiveDateTime};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::{Invoice, InvoiceSequence};
use crate::db::schema::{invoice_sequences, invoices};
use crate::db::{new_id, now, Db, DbError, KeepPreparedDsl};
use crate::with_write_tx;

/// Invoice status, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatus {
    Generated,
    Sent,
    Paid,
    Overdue,
    Cancelled,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 5] = [
        Self::Generated,
        Self::Sent,
        Self::Paid,
        Self::Overdue,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "GENERATED",
            Self::Sent => "SENT",
            Self::Paid => "PAID",
            Self::Overdue => "OVERDUE",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Which changes an admin may make. CANCELLED is final (the number stays issued);
    /// a paid invoice cannot go back to an unpaid state.
    pub fn can_become(self, next: InvoiceStatus) -> bool {
        use InvoiceStatus::*;
        match (self, next) {
            (a, b) if a == b => true,
            (Cancelled, _) => false,
            (_, Cancelled) => true,
            (Generated, Sent | Paid | Overdue) => true,
            (Sent, Paid | Overdue) => true,
            (Overdue, Paid) => true,
            _ => false,
        }
    }
}

/// `FAC-2026-000042`.
pub fn format_number(prefix: &str, year: i32, sequence: i64) -> String {
    format!("{prefix}-{year}-{sequence:06}")
}

/// What to record when issuing an invoice for an order.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub commande_id: String,
    pub amount_cents: i64,
    pub tax_cents: i64,
    pub tax_rate_bp: i32,
    pub paid_at: Option<NaiveDateTime>,
    pub due_days: u32,
}

/// The invoice for an order, and whether this call created it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub invoice: Invoice,
    pub created: bool,
}

/// Issues the order's invoice, or returns the one it already has (exactly one per order).
/// `document` receives the allocated number and returns the JSON stored with the row (the
/// data the PDF prints), so it can carry the number.
pub async fn issue<F>(
    db: &Db,
    prefix: &str,
    new: NewInvoice,
    document: F,
) -> Result<Issued, DbError>
where
    F: Fn(&str, NaiveDateTime) -> Result<String, DbError> + Send + Sync,
{
    issue_tx(db, prefix, new, document, false).await
}

/// [`issue`], and in the same transaction moves the order's pipeline past its `invoice`
/// step (the pipeline's way: one commit for both).
pub async fn issue_and_advance<F>(
    db: &Db,
    prefix: &str,
    new: NewInvoice,
    document: F,
) -> Result<Issued, DbError>
where
    F: Fn(&str, NaiveDateTime) -> Result<String, DbError> + Send + Sync,
{
    issue_tx(db, prefix, new, document, true).await
}

async fn issue_tx<F>(
    db: &Db,
    prefix: &str,
    new: NewInvoice,
    document: F,
    advance: bool,
) -> Result<Issued, DbError>
where
    F: Fn(&str, NaiveDateTime) -> Result<String, DbError> + Send + Sync,
{
    let (prefix, new, document) = (&prefix, &new, &document);
    with_write_tx!(db, |conn| {
        let issued = async {
            let existing: Option<Invoice> = invoices::table
                .filter(invoices::commande_id.eq(&new.commande_id))
                .select(Invoice::as_select())
                .first(conn)
                .await
                .optional()?;
            if let Some(invoice) = existing {
                return Ok::<_, DbError>(Issued {
                    invoice,
                    created: false,
                });
            }
            let issued_at = now();
            let year = issued_at.year();
            let sequence: i64 = diesel::insert_into(invoice_sequences::table)
                .values(&InvoiceSequence {
                    year,
                    last_number: 1,
                })
                .on_conflict(invoice_sequences::year)
                .do_update()
                .set(invoice_sequences::last_number.eq(invoice_sequences::last_number + 1))
                .returning(invoice_sequences::last_number)
                .keep_prepared()
                .get_result(conn)
                .await?;
            let number = format_number(prefix, year, sequence);
            let invoice = Invoice {
                id: new_id(),
                commande_id: new.commande_id.clone(),
                document: document(&number, issued_at)?,
                number,
                year,
                sequence,
                amount_cents: new.amount_cents,
                tax_cents: new.tax_cents,
                tax_rate_bp: new.tax_rate_bp,
                pdf_path: None,
                pdf_sha256: None,
                pdf_size: None,
                status: InvoiceStatus::Generated.as_str().to_owned(),
                issued_at,
                due_at: issued_at + Duration::days(i64::from(new.due_days)),
                paid_at: new.paid_at,
                created_at: issued_at,
                updated_at: issued_at,
            };
            diesel::insert_into(invoices::table)
                .values(&invoice)
                .execute(conn)
                .await?;
            Ok(Issued {
                invoice,
                created: true,
            })
        }
        .await?;
        if advance {
            crate::orders::advance_rows!(conn, &new.commande_id, crate::orders::step::INVOICE);
        }
        Ok(issued)
    })
}

pub async fn find(db: &Db, id: &str) -> Result<Option<Invoice>, DbError> {
    Ok(crate::with_conn!(db, |conn| {
        invoices::table
            .find(id)
            .select(Invoice::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

pub async fn find_by_commande(db: &Db, commande_id: &str) -> Result<Option<Invoice>, DbError> {
    Ok(crate::with_conn!(db, |conn| {
        invoices::table
            .filter(invoices::commande_id.eq(commande_id))
            .select(Invoice::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

/// Records the stored PDF on the row.
pub async fn record_pdf(
    db: &Db,
    id: &str,
    path: &str,
    sha256: &str,
    size: i64,
) -> Result<(), DbError> {
    crate::with_conn!(db, write, |conn| {
        diesel::update(invoices::table.find(id))
            .set((
                invoices::pdf_path.eq(path),
                invoices::pdf_sha256.eq(sha256),
                invoices::pdf_size.eq(size),
                invoices::updated_at.eq(now()),
            ))
            .keep_prepared()
            .execute(conn)
            .await
    })?;
    Ok(())
}

/// Moves the invoice to `next` if the transition is allowed; returns the row as it is now.
pub async fn set_status(
    db: &Db,
    id: &str,
    next: InvoiceStatus,
) -> Result<Result<Invoice, InvoiceStatus>, DbError> {
    with_write_tx!(db, |conn| {
        let invoice: Invoice = invoices::table
            .find(id)
            .select(Invoice::as_select())
            .first(conn)
            .await?;
        let current = InvoiceStatus::parse(&invoice.status)
            .ok_or_else(|| DbError::Corrupt(format!("invoice status {}", invoice.status)))?;
        if !current.can_become(next) {
            return Ok(Err(current));
        }
        let updated_at = now();
        diesel::update(invoices::table.find(id))
            .set((
                invoices::status.eq(next.as_str()),
                invoices::updated_at.eq(updated_at),
            ))
            .keep_prepared()
            .execute(conn)
            .await?;
        Ok(Ok(Invoice {
            status: next.as_str().to_owned(),
            updated_at,
            ..invoice
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_zero_padded() {
        assert_eq!(format_number("FAC", 2026, 42), "FAC-2026-000042");
    }

    #[test]
    fn cancelled_is_final_and_paid_never_goes_back() {
        use InvoiceStatus::*;
        assert!(!Cancelled.can_become(Paid));
        assert!(!Paid.can_become(Generated));
        assert!(!Paid.can_become(Sent));
        assert!(Paid.can_become(Cancelled));
        assert!(Generated.can_become(Sent));
        assert!(Sent.can_become(Paid));
    }
}
