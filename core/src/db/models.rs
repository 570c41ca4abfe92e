//! Rows as Rust structs. One struct serves reads and inserts on both engines.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::*;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct User {
    pub id: String,
    pub prenom: String,
    pub nom: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub role: String,
    pub is_active: bool,
    pub adresse: Option<String>,
    pub telephone: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = commandes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Commande {
    pub id: String,
    pub user_id: String,
    pub titre: String,
    pub description: String,
    pub statut: String,
    pub payment_status: String,
    pub stripe_session_id: Option<String>,
    pub stripe_payment_intent: Option<String>,
    pub amount_cents: i64,
    pub currency: String,
    pub is_guest: bool,
    pub paid_at: Option<NaiveDateTime>,
    pub pipeline: Option<String>,
    pub pipeline_attempts: i32,
    pub pipeline_error: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = pending_commandes, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PendingCommande {
    pub id: String,
    pub prenom: String,
    pub nom: String,
    pub email: String,
    pub telephone: Option<String>,
    pub adresse: Option<String>,
    pub titre: String,
    pub description: String,
    pub amount_cents: i64,
    pub nombre_pages: Option<i32>,
    pub stripe_session_id: Option<String>,
    #[serde(skip)]
    pub activation_token: Option<String>,
    pub token_expires_at: Option<NaiveDateTime>,
    pub status: String,
    pub is_processed: bool,
    pub user_id: Option<String>,
    pub commande_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = files, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct StoredFileRow {
    pub id: String,
    pub pending_commande_id: Option<String>,
    pub commande_id: Option<String>,
    pub original_name: String,
    pub stored_path: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = invoice_sequences, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct InvoiceSequence {
    pub year: i32,
    pub last_number: i64,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = invoices, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Invoice {
    pub id: String,
    pub commande_id: String,
    pub number: String,
    pub year: i32,
    pub sequence: i64,
    pub amount_cents: i64,
    pub tax_cents: i64,
    pub tax_rate_bp: i32,
    pub pdf_path: Option<String>,
    pub pdf_sha256: Option<String>,
    pub pdf_size: Option<i64>,
    pub status: String,
    pub document: String,
    pub issued_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = webhook_events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct WebhookEvent {
    pub id: String,
    pub stripe_event_id: String,
    pub event_type: String,
    pub payload: String,
    pub received_at: NaiveDateTime,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub processed_at: Option<NaiveDateTime>,
    pub session_id: Option<String>,
    pub commande_id: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = order_steps, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct OrderStep {
    pub id: String,
    pub commande_id: String,
    pub step: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = notifications, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub message: String,
    pub priority: String,
    pub data: String,
    pub is_read: bool,
    pub dedupe_key: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = email_deliveries, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct EmailDelivery {
    pub id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub invoice_id: Option<String>,
    pub commande_id: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dedupe_key: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}
