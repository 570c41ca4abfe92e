//! `POST /auth/login` (email + password → a bearer token) and `POST /auth/activate` (the
//! one-time link a guest checkout mails sets the account's password and activates it).

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};
use facture_core::storage::sha256_hex;
use facture_core::users::{self, TokenState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{self, Role};
use crate::error::ApiError;
use crate::routes::openapi::RouteDef;
use crate::routes::pagination::{iso, parse_json, ErrorBody};
use crate::startup::AppState;

pub fn routes() -> Vec<RouteDef> {
    vec![
        RouteDef::new(Method::POST, "/auth/login", |r| r.to(login)),
        RouteDef::new(Method::POST, "/auth/activate", |r| r.to(activate)),
    ]
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub email: String,
    pub prenom: String,
    pub nom: String,
    /// `USER` or `ADMIN`.
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// An HS256 JWT to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// `Bearer`.
    pub token_type: String,
    /// When the token stops being accepted (ISO 8601, UTC).
    pub expires_at: String,
    pub user: AccountView,
}

const BAD_CREDENTIALS: &str = "invalid email or password";

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        BAD_CREDENTIALS,
    )
}

/// Logs in. Unknown email and wrong password answer the same 401 after the same argon2
/// work; an inactive account answers 403 only to a caller who knows its password. A guest
/// account has no password until activated, so it answers 401 like any wrong password.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "The body is not `{email, password}`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_inactive`", body = ErrorBody),
    )
)]
pub async fn login(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let request: LoginRequest = parse_json(&body)?;
    let email = request.email.trim();
    let user = if email.is_empty() {
        None
    } else {
        users::find_for_login(&state.db, email).await?
    };
    let phc = user.as_ref().and_then(|u| u.password_hash.clone());
    let matches = auth::verify_password_blocking(request.password, phc).await;
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!("login refused");
        return Err(invalid_credentials());
    };
    if !user.is_active {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "account_inactive",
            "this account is not active",
        ));
    }
    let role = Role::parse(&user.role).ok_or_else(invalid_credentials)?;
    let now = chrono::Utc::now().timestamp();
    let (token, claims) = auth::issue_token(
        auth::jwt_secret(&state)?,
        &user.id,
        role,
        now,
        state.settings.auth.token_lifetime_secs,
    )?;
    let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0)
        .map(|t| iso(t.naive_utc()))
        .unwrap_or_default();
    tracing::info!(user = %user.id, role = role.as_str(), "login");
    Ok(HttpResponse::Ok().json(LoginResponse {
        token,
        token_type: "Bearer".into(),
        expires_at,
        user: AccountView {
            id: user.id,
            email: user.email,
            prenom: user.prenom,
            nom: user.nom,
            role: user.role,
        },
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ActivateRequest {
    /// The token from the activation link.
    pub token: String,
    /// The new password: at least 12 characters.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivateResponse {
    pub activated: bool,
    pub user: AccountView,
}

/// Activates a guest-created account with the token from its activation mail and sets
/// its password. A token works once, until it expires.
#[utoipa::path(
    post,
    path = "/auth/activate",
    tag = "auth",
    request_body = ActivateRequest,
    responses(
        (status = 200, description = "Activated: the account can log in", body = ActivateResponse),
        (status = 400, description = "`invalid_body`, `weak_password`, `invalid_token` (unknown or already used) or `token_expired`", body = ErrorBody),
    )
)]
pub async fn activate(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: ActivateRequest = parse_json(&body)?;
    auth::check_password_strength(&request.password)?;
    let token = request.token.trim();
    let invalid_token = || {
        ApiError::bad_request(
            "invalid_token",
            "this activation link is not valid (unknown, or already used)",
        )
    };
    if token.is_empty() {
        return Err(invalid_token());
    }
    let digest = sha256_hex(token.as_bytes());
    let now = facture_core::db::now();
    match users::activation_token_state(&state.db, &digest, now).await? {
        TokenState::Unknown => return Err(invalid_token()),
        TokenState::Expired => {
            return Err(ApiError::bad_request(
                "token_expired",
                "this activation link has expired",
            ))
        }
        TokenState::Valid(_) => {}
    }
    let phc = auth::hash_password_blocking(request.password).await?;
    // Clears the token and sets the password in one transaction, only if the token is
    // still there: of two concurrent uses, one wins.
    let user = users::activate(&state.db, &digest, &phc, now)
        .await?
        .ok_or_else(invalid_token)?;
    tracing::info!(user = %user.id, "account activated");
    Ok(HttpResponse::Ok().json(ActivateResponse {
        activated: true,
        user: AccountView {
            id: user.id,
            email: user.email,
            prenom: user.prenom,
            nom: user.nom,
            role: user.role,
        },
    }))
}
