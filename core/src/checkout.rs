//! The rows checkout creates. Checkout asks Stripe first and writes afterwards, so every
//! row written here already carries a Checkout Session that exists; ids are chosen by the
//! caller beforehand because they are sent to Stripe (metadata, idempotency key).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::{Commande, PendingCommande};
use crate::db::schema::{commandes, pending_commandes};
use crate::db::{now, Db, DbError};
use crate::orders::{insert_pending_order, payment, unpaid_commande, NewPendingOrder};
use crate::with_conn;

/// A signed-in customer's new order, whose Checkout Session Stripe just created.
#[derive(Debug, Clone)]
pub struct NewCheckoutOrder {
    pub id: String,
    pub user_id: String,
    pub titre: String,
    pub description: String,
    pub amount_cents: i64,
    pub session_id: String,
}

/// Inserts the unpaid order with its session.
pub async fn insert_order(db: &Db, new: &NewCheckoutOrder) -> Result<Commande, DbError> {
    let c = unpaid_commande(
        new.id.clone(),
        new.user_id.clone(),
        new.titre.clone(),
        new.description.clone(),
        new.amount_cents,
        new.session_id.clone(),
        now(),
    );
    with_conn!(db, write, |conn| {
        diesel::insert_into(commandes::table)
            .values(&c)
            .execute(conn)
            .await
    })?;
    Ok(c)
}

/// Points an unpaid order at a new session, only if it still points at `previous` (compare
/// and set: of two checkouts racing for one order, one wins and the other learns it).
/// Returns whether this call won.
pub async fn replace_session(
    db: &Db,
    commande_id: &str,
    previous: Option<&str>,
    session_id: &str,
) -> Result<bool, DbError> {
    let t = now();
    // One UPDATE: atomic on both engines, no transaction needed.
    let changed = with_conn!(db, write, |conn| {
        let mut q = diesel::update(commandes::table)
            .filter(commandes::id.eq(commande_id))
            .filter(commandes::payment_status.ne(payment::PAID))
            .into_boxed();
        q = match previous {
            Some(p) => q.filter(commandes::stripe_session_id.eq(p)),
            None => q.filter(commandes::stripe_session_id.is_null()),
        };
        q.set((
            commandes::stripe_session_id.eq(Some(session_id)),
            commandes::payment_status.eq(payment::PENDING),
            commandes::updated_at.eq(t),
        ))
        .execute(conn)
        .await
    })?;
    Ok(changed == 1)
}

/// A guest checkout, whose Checkout Session Stripe just created.
#[derive(Debug, Clone)]
pub struct NewGuestCheckout {
    pub id: String,
    pub order: NewPendingOrder,
    /// SHA-256 (hex) of the activation token; the token itself is never stored.
    pub activation_token_sha256: String,
    pub token_expires_at: NaiveDateTime,
}

/// Inserts the pending order with its session and hashed activation token.
pub async fn insert_guest(db: &Db, new: &NewGuestCheckout) -> Result<PendingCommande, DbError> {
    let token = (new.activation_token_sha256.clone(), new.token_expires_at);
    insert_pending_order(db, new.id.clone(), &new.order, Some(token)).await
}

pub async fn find_pending(db: &Db, id: &str) -> Result<Option<PendingCommande>, DbError> {
    Ok(with_conn!(db, |conn| {
        pending_commandes::table
            .find(id)
            .select(PendingCommande::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

pub async fn find_pending_by_session(
    db: &Db,
    session_id: &str,
) -> Result<Option<PendingCommande>, DbError> {
    Ok(with_conn!(db, |conn| {
        pending_commandes::table
            .filter(pending_commandes::stripe_session_id.eq(session_id))
            .select(PendingCommande::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

/// The pending orders of one email address, oldest first.
pub async fn pending_by_email(db: &Db, email: &str) -> Result<Vec<PendingCommande>, DbError> {
    Ok(with_conn!(db, |conn| {
        pending_commandes::table
            .filter(pending_commandes::email.eq(email))
            .order(pending_commandes::created_at.asc())
            .select(PendingCommande::as_select())
            .load(conn)
            .await
    })?)
}

/// The orders of one customer, oldest first.
pub async fn orders_of(db: &Db, user_id: &str) -> Result<Vec<Commande>, DbError> {
    Ok(with_conn!(db, |conn| {
        commandes::table
            .filter(commandes::user_id.eq(user_id))
            .order(commandes::created_at.asc())
            .select(Commande::as_select())
            .load(conn)
            .await
    })?)
}
