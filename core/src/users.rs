//! Accounts: looking users up to log in, creating or promoting an administrator, and the
//! one-time activation of an account a guest checkout created.
//!
//! Password hashing happens above this module (it is CPU-bound and must not run inside a
//! write transaction); these functions only store the PHC strings they are given.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::{PendingCommande, User};
use crate::db::schema::{pending_commandes, users};
use crate::db::{new_id, now, Db, DbError, KeepPreparedDsl};
use crate::{with_conn, with_write_tx};

/// Stored roles.
pub mod role {
    pub const USER: &str = "USER";
    pub const ADMIN: &str = "ADMIN";
}

diesel::define_sql_function! {
    /// SQL `lower(text)` (ASCII-only on SQLite, locale-aware on PostgreSQL).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The account an email logs into: the exact address first, else the one whose address
/// differs only by ASCII case (the oldest, should there be several).
pub async fn find_for_login(db: &Db, email: &str) -> Result<Option<User>, DbError> {
    let exact: Option<User> = with_conn!(db, |conn| {
        users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    if exact.is_some() {
        return Ok(exact);
    }
    let folded = email.to_ascii_lowercase();
    Ok(with_conn!(db, |conn| {
        users::table
            .filter(lower(users::email).eq(&folded))
            .order((users::created_at.asc(), users::id.asc()))
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    })?)
}

/// What [`upsert_admin`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminAccount {
    pub user: User,
    /// A new account (otherwise an existing one was promoted / its password replaced).
    pub created: bool,
}

/// Makes `email` an active ADMIN whose password is `password_hash`: creates the account,
/// or promotes the existing one (same id, orders kept).
pub async fn upsert_admin(
    db: &Db,
    email: &str,
    password_hash: &str,
) -> Result<AdminAccount, DbError> {
    with_write_tx!(db, |conn| {
        let t = now();
        let existing: Option<User> = users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .first(conn)
            .await
            .optional()?;
        if let Some(user) = existing {
            diesel::update(users::table.find(&user.id))
                .set((
                    users::role.eq(role::ADMIN),
                    users::password_hash.eq(Some(password_hash)),
                    users::is_active.eq(true),
                    users::updated_at.eq(t),
                ))
                .keep_prepared()
                .execute(conn)
                .await?;
            return Ok(AdminAccount {
                user: User {
                    role: role::ADMIN.to_owned(),
                    password_hash: Some(password_hash.to_owned()),
                    is_active: true,
                    updated_at: t,
                    ..user
                },
                created: false,
            });
        }
        let user = User {
            id: new_id(),
            prenom: "Admin".into(),
            nom: String::new(),
            email: email.to_owned(),
            password_hash: Some(password_hash.to_owned()),
            role: role::ADMIN.into(),
            is_active: true,
            adresse: None,
            telephone: None,
            created_at: t,
            updated_at: t,
        };
        diesel::insert_into(users::table)
            .values(&user)
            .execute(conn)
            .await?;
        Ok(AdminAccount {
            user,
            created: true,
        })
    })
}

/// Where an activation token stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenState {
    /// No pending order carries this token (never issued, already used, or replaced).
    Unknown,
    Expired,
    /// Usable: the guest order it was issued for.
    Valid(Box<PendingCommande>),
}

/// Looks an activation token up by its SHA-256 (hex), as the engine stored it.
pub async fn activation_token_state(
    db: &Db,
    token_sha256: &str,
    at: NaiveDateTime,
) -> Result<TokenState, DbError> {
    let pending: Option<PendingCommande> = with_conn!(db, |conn| {
        pending_commandes::table
            .filter(pending_commandes::activation_token.eq(token_sha256))
            .select(PendingCommande::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    Ok(match pending {
        None => TokenState::Unknown,
        Some(p) if p.user_id.is_none() => TokenState::Unknown,
        Some(p) if p.token_expires_at.is_none_or(|exp| exp <= at) => TokenState::Expired,
        Some(p) => TokenState::Valid(Box::new(p)),
    })
}

/// Uses the token: in one transaction, clears it (only if it is still the one stored and
/// unexpired, so it works once even under concurrent requests), then sets the account's
/// password and activates it. `None` when the token was no longer usable.
pub async fn activate(
    db: &Db,
    token_sha256: &str,
    password_hash: &str,
    at: NaiveDateTime,
) -> Result<Option<User>, DbError> {
    with_write_tx!(db, |conn| {
        let pending: Option<PendingCommande> = pending_commandes::table
            .filter(pending_commandes::activation_token.eq(token_sha256))
            .filter(pending_commandes::token_expires_at.gt(at))
            .select(PendingCommande::as_select())
            .first(conn)
            .await
            .optional()?;
        let Some(pending) = pending else {
            return Ok(None);
        };
        let Some(user_id) = pending.user_id.clone() else {
            return Ok(None);
        };
        let cleared = diesel::update(
            pending_commandes::table
                .filter(pending_commandes::id.eq(&pending.id))
                .filter(pending_commandes::activation_token.eq(token_sha256)),
        )
        .set((
            pending_commandes::activation_token.eq(None::<String>),
            pending_commandes::token_expires_at.eq(None::<NaiveDateTime>),
            pending_commandes::updated_at.eq(at),
        ))
        .keep_prepared()
        .execute(conn)
        .await?;
        if cleared != 1 {
            return Ok(None);
        }
        diesel::update(users::table.find(&user_id))
            .set((
                users::password_hash.eq(Some(password_hash)),
                users::is_active.eq(true),
                users::updated_at.eq(at),
            ))
            .keep_prepared()
            .execute(conn)
            .await?;
        Ok(users::table
            .find(&user_id)
            .select(User::as_select())
            .first(conn)
            .await
            .optional()?)
    })
}
