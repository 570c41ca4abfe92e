//! Checkout: a customer's order becomes a Stripe Checkout Session to pay.
//!
//! - `POST /payments/create-checkout-session` (signed in): `{commandeId}` pays an existing
//!   unpaid order of the caller, `{titre, description, amountCents}` creates one.
//! - `POST /payments/guest-checkout` (public): a guest order for one service of the price
//!   list; the account is created when the payment arrives (the engine's guest flow).
//! - `GET /payments/services`: that price list.
//!
//! Stripe is asked first and the database written afterwards, so no row ever points at a
//! session that does not exist: when Stripe is unreachable or refuses, nothing was written.
//! Every session request carries an `Idempotency-Key` derived from the order's id (chosen
//! before the call), so a retried request is answered with the same session.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use facture_core::checkout::{self as store, NewCheckoutOrder, NewGuestCheckout};
use facture_core::config::{STRIPE_MAX_AMOUNT_CENTS, STRIPE_MIN_AMOUNT_CENTS};
use facture_core::db::models::Commande;
use facture_core::db::{new_id, now};
use facture_core::orders::NewPendingOrder;
use facture_core::orders::{self, payment};
use facture_core::storage::sha256_hex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::routes::pagination::ErrorBody;
use crate::startup::AppState;
use crate::stripe_client::{CheckoutParams, StripeCallError, StripeClient};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(StripeCell::default()))
        .service(
            web::resource("/payments/create-checkout-session")
                .route(web::post().to(create_checkout_session)),
        )
        .service(web::resource("/payments/guest-checkout").route(web::post().to(guest_checkout)))
        .service(web::resource("/payments/services").route(web::get().to(services)));
}

/// The worker's Stripe client, built from the settings on first use.
#[derive(Default)]
pub struct StripeCell(std::sync::OnceLock<Option<StripeClient>>);

impl StripeCell {
    fn client(&self, state: &AppState) -> Result<&StripeClient, ApiError> {
        self.0
            .get_or_init(|| StripeClient::from_settings(&state.settings.stripe))
            .as_ref()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "stripe_not_configured",
                    "online payment is not configured (stripe.secret_key)",
                )
            })
    }
}

/// What both checkout endpoints answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutAnswer {
    /// The Checkout Session's id (`cs_…`).
    session_id: String,
    /// Where to send the customer to pay.
    url: String,
    /// The order paid (signed-in checkout only).
    #[serde(skip_serializing_if = "Option::is_none")]
    commande_id: Option<String>,
}

/// `POST /payments/create-checkout-session`: `{commandeId}` or `{titre, description, amountCents}`.
/// (For the document: the body is read field by field, each error naming its field.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutRequest {
    /// An unpaid order of the caller (then no other field).
    pub commande_id: Option<String>,
    /// A new order's title (1–200 characters, one line): the Stripe product name.
    pub titre: Option<String>,
    /// A new order's description (1–5000 characters).
    pub description: Option<String>,
    /// A new order's tax-inclusive amount in euro cents (50–99999999).
    pub amount_cents: Option<i64>,
}

/// `POST /payments/guest-checkout`. (For the document: the body is read field by field.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestCheckoutRequest {
    /// 1–100 characters.
    pub prenom: String,
    /// 1–100 characters.
    pub nom: String,
    pub email: String,
    /// Optional; 6 to 15 digits, with `+`, spaces, dots, dashes, parentheses.
    pub telephone: Option<String>,
    /// The billing address (1–500 characters).
    pub adresse: String,
    /// A service id from `GET /payments/services`.
    pub service: String,
    /// Optional (default: the service's description); at most 5000 characters.
    pub description: Option<String>,
    /// Optional, 1–100000.
    pub nombre_pages: Option<i64>,
    /// Must be `true`.
    pub consentement_rgpd: bool,
}

// ---------------------------------------------------------------------------------------
// GET /payments/services

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    /// Tax-inclusive, euro cents.
    amount_cents: i64,
}

/// The price list guests choose from (`[[stripe.services]]`):
/// `{"currency": "eur", "services": [{id, name, description, amountCents}]}`.
#[utoipa::path(
    get,
    path = "/payments/services",
    tag = "payments",
    responses((status = 200, description = "`{currency, services: [ServiceView]}`"))
)]
pub async fn services(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<ServiceView<'_>> = state
        .settings
        .stripe
        .services
        .iter()
        .map(|s| ServiceView {
            id: &s.id,
            name: &s.name,
            description: &s.description,
            amount_cents: s.amount_cents,
        })
        .collect();
    HttpResponse::Ok().json(json!({ "currency": "eur", "services": list }))
}

// ---------------------------------------------------------------------------------------
// Field-by-field validation of a JSON object

fn field_error(name: &str, expected: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_field", format!("field `{name}`: {expected}"))
}

struct Fields(Map<String, Value>);

impl Fields {
    fn from_body(body: Value) -> Result<Self, ApiError> {
        match body {
            Value::Object(map) => Ok(Fields(map)),
            _ => Err(ApiError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            )),
        }
    }

    fn present(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| !v.is_null())
    }

    /// A trimmed string of at most `max` characters; `None` when absent, null or blank.
    fn text(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.chars().count() > max {
                    return Err(field_error(name, format!("at most {max} characters")));
                }
                if s.chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
                {
                    return Err(field_error(name, "control characters are not allowed"));
                }
                Ok((!s.is_empty()).then(|| s.to_owned()))
            }
            Some(_) => Err(field_error(name, "expected a string")),
        }
    }

    fn required_text(&self, name: &str, max: usize) -> Result<String, ApiError> {
        self.text(name, max)?
            .ok_or_else(|| field_error(name, "required"))
    }

    /// One line: no line breaks.
    fn required_line(&self, name: &str, max: usize) -> Result<String, ApiError> {
        let s = self.required_text(name, max)?;
        if s.contains(['\n', '\r', '\t']) {
            return Err(field_error(name, "a single line"));
        }
        Ok(s)
    }

    fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
                _ => Err(field_error(
                    name,
                    format!("a whole number between {min} and {max}"),
                )),
            },
            Some(_) => Err(field_error(name, "expected a whole number")),
        }
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(field_error(name, "expected true or false")),
        }
    }
}

/// A plausible email address: `local@domain.tld`, no spaces, at most 254 characters.
fn check_email(name: &str, email: &str) -> Result<(), ApiError> {
    let bad = || field_error(name, "an email address (name@example.fr)");
    if email.len() > 254
        || email.contains(char::is_whitespace)
        || email.contains(['<', '>', ',', ';'])
    {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || local.contains('@') || !domain_ok {
        return Err(bad());
    }
    Ok(())
}

/// A phone number: digits with optional `+`, spaces, dots, dashes, parentheses; 6 to 15 digits.
fn check_phone(name: &str, phone: &str) -> Result<(), ApiError> {
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-' | '(' | ')'));
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if !allowed || !(6..=15).contains(&digits) || phone.rfind('+').is_some_and(|i| i > 0) {
        return Err(field_error(name, "a phone number (+33 6 12 34 56 78)"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Stripe

fn stripe_error(e: StripeCallError) -> ApiError {
    let unavailable = || {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "stripe_unavailable",
            "the payment provider is unavailable; nothing was charged or recorded, retry later",
        )
    };
    match e {
        // facture's own fault towards Stripe (key, permissions) or Stripe's rate limit:
        // logged, not the caller's to fix.
        StripeCallError::Refused {
            status: status @ (401 | 403 | 429),
            message,
            ..
        } => {
            tracing::error!(status, %message, "Stripe refused facture's request");
            unavailable()
        }
        // Stripe's refusal of this request (400 invalid, 402 declined...) passes through.
        StripeCallError::Refused {
            status, message, ..
        } => ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            "stripe_error",
            format!("Stripe refused the payment session: {message}"),
        ),
        StripeCallError::Unavailable(cause) => {
            tracing::warn!(%cause, "Stripe unavailable");
            unavailable()
        }
    }
}

/// Creates the session; when the key was already used with other parameters (an earlier
/// attempt whose session was never recorded, hence never shown), once more with a fresh key.
async fn create_session(
    client: &StripeClient,
    mut params: CheckoutParams,
) -> Result<(String, String), ApiError> {
    match client.create_checkout_session(&params).await {
        Err(e) if e.is_idempotency_conflict() => {
            tracing::info!(key = %params.idempotency_key, "idempotency key reused with other parameters; new key");
            params.idempotency_key =
                format!("{}-{}", params.idempotency_key, facture_core::random_hex(8));
            client
                .create_checkout_session(&params)
                .await
                .map_err(stripe_error)
        }
        other => other.map_err(stripe_error),
    }
}

/// Stripe counts from the moment it creates the session, a little after this one: the
/// lifetime keeps a minute inside Stripe's bounds (30 minutes to 24 hours).
fn expires_at(state: &AppState) -> i64 {
    let minutes = i64::try_from(state.settings.stripe.checkout_expiry_minutes).unwrap_or(60);
    let secs = (minutes * 60).clamp(31 * 60, 24 * 3600 - 60);
    chrono::Utc::now().timestamp() + secs
}

/// Stripe's limit on a product description.
fn short(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(500).collect())
}

// ---------------------------------------------------------------------------------------
// POST /payments/create-checkout-session

enum OrderRequest {
    Existing(String),
    New {
        titre: String,
        description: String,
        amount: i64,
    },
}

/// A signed-in customer pays an order: an existing unpaid one (`{commandeId}`: its open
/// session again, or a new one once it expired) or a new one. Stripe is asked first; the
/// order is recorded only with the session Stripe created.
#[utoipa::path(
    post,
    path = "/payments/create-checkout-session",
    tag = "payments",
    security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 200, description = "The session to pay", body = CheckoutAnswer),
        (status = 400, description = "`invalid_field` (naming it), `invalid_body`, or Stripe's refusal `stripe_error`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 402, description = "`stripe_error`: Stripe's message", body = ErrorBody),
        (status = 404, description = "`not_found`: no such order of the caller", body = ErrorBody),
        (status = 409, description = "`already_paid`, `checkout_completed`, `checkout_conflict`", body = ErrorBody),
        (status = 502, description = "`stripe_unavailable`: nothing was recorded", body = ErrorBody),
        (status = 503, description = "`stripe_not_configured`", body = ErrorBody),
    )
)]
pub async fn create_checkout_session(
    user: AuthUser,
    state: web::Data<AppState>,
    cell: web::Data<StripeCell>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let fields = Fields::from_body(body.into_inner())?;
    let request = if fields.present("commandeId") {
        if ["titre", "description", "amountCents"]
            .iter()
            .any(|f| fields.present(f))
        {
            return Err(ApiError::bad_request(
                "invalid_body",
                "send either {commandeId} or {titre, description, amountCents}, not both",
            ));
        }
        OrderRequest::Existing(fields.required_line("commandeId", 100)?)
    } else {
        let titre = fields.required_line("titre", 200)?;
        let description = fields.required_text("description", 5000)?;
        let amount = fields
            .integer(
                "amountCents",
                STRIPE_MIN_AMOUNT_CENTS,
                STRIPE_MAX_AMOUNT_CENTS,
            )?
            .ok_or_else(|| field_error("amountCents", "required"))?;
        OrderRequest::New {
            titre,
            description,
            amount,
        }
    };
    let client = cell.client(&state)?;
    let answer = match request {
        OrderRequest::Existing(id) => pay_existing(&state, client, &user, &id).await?,
        OrderRequest::New {
            titre,
            description,
            amount,
        } => pay_new(&state, client, &user, titre, description, amount).await?,
    };
    Ok(HttpResponse::Ok().json(answer))
}

fn order_params(
    state: &AppState,
    commande_id: &str,
    idempotency_key: String,
    titre: &str,
    description: &str,
    amount_cents: i64,
    email: &str,
) -> CheckoutParams {
    let stripe = &state.settings.stripe;
    CheckoutParams {
        idempotency_key,
        product_name: titre.to_owned(),
        product_description: short(description),
        amount_cents,
        customer_email: email.to_owned(),
        client_reference_id: commande_id.to_owned(),
        metadata: HashMap::from([
            ("commande_id".to_owned(), commande_id.to_owned()),
            ("source".to_owned(), stripe.source.clone()),
        ]),
        success_url: state.settings.checkout_success_url(),
        cancel_url: state.settings.checkout_cancel_url(),
        expires_at: expires_at(state),
    }
}

/// A new order for the caller: the session first, then the row that points at it.
async fn pay_new(
    state: &AppState,
    client: &StripeClient,
    user: &AuthUser,
    titre: String,
    description: String,
    amount_cents: i64,
) -> Result<CheckoutAnswer, ApiError> {
    let id = new_id();
    let params = order_params(
        state,
        &id,
        format!("facture-commande-{id}"),
        &titre,
        &description,
        amount_cents,
        &user.email,
    );
    let (session_id, url) = create_session(client, params).await?;
    store::insert_order(
        &state.db,
        &NewCheckoutOrder {
            id: id.clone(),
            user_id: user.id.clone(),
            titre,
            description,
            amount_cents,
            session_id: session_id.clone(),
        },
    )
    .await?;
    tracing::info!(commande = %id, session = %session_id, "checkout session created");
    Ok(CheckoutAnswer {
        session_id,
        url,
        commande_id: Some(id),
    })
}

/// An existing unpaid order of the caller (any order for an admin): its session while it is
/// still open, else a new one.
async fn pay_existing(
    state: &AppState,
    client: &StripeClient,
    user: &AuthUser,
    id: &str,
) -> Result<CheckoutAnswer, ApiError> {
    let missing = || ApiError::not_found("not_found", format!("no order {id}"));
    let commande: Commande = orders::find(&state.db, id)
        .await?
        .filter(|c| c.user_id == user.id || user.is_admin())
        .ok_or_else(missing)?;
    if commande.payment_status == payment::PAID {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_paid",
            format!("order {id} is already paid"),
        ));
    }
    let previous = commande.stripe_session_id.clone();
    if let Some(session) = previous.as_deref() {
        if let Some(s) = client
            .retrieve_checkout_session(session)
            .await
            .map_err(stripe_error)?
        {
            if s.is_open() {
                if let Some(url) = s.url.filter(|u| !u.is_empty()) {
                    return Ok(CheckoutAnswer {
                        session_id: s.id,
                        url,
                        commande_id: Some(commande.id),
                    });
                }
            } else if s.status.as_deref() == Some("complete") {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "checkout_completed",
                    format!("the payment of order {id} is being processed"),
                ));
            }
        }
        // Expired, or unknown to Stripe: a new session replaces it.
    }
    let email = if commande.user_id == user.id {
        user.email.clone()
    } else {
        orders::find_user(&state.db, &commande.user_id)
            .await?
            .map(|u| u.email)
            .ok_or_else(|| ApiError::internal(format!("order {id} has no customer")))?
    };
    let key = match previous.as_deref() {
        None => format!("facture-commande-{}", commande.id),
        Some(p) => format!("facture-commande-{}-after-{p}", commande.id),
    };
    let params = order_params(
        state,
        &commande.id,
        key,
        &commande.titre,
        &commande.description,
        commande.amount_cents,
        &email,
    );
    let (session_id, url) = create_session(client, params).await?;
    let won =
        store::replace_session(&state.db, &commande.id, previous.as_deref(), &session_id).await?;
    if !won {
        // Another checkout of this order recorded its session first (or it was paid):
        // this session is never shown, so it cannot be paid, and expires by itself.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "checkout_conflict",
            format!("order {id} changed during checkout; retry"),
        ));
    }
    tracing::info!(commande = %commande.id, session = %session_id, "checkout session created");
    Ok(CheckoutAnswer {
        session_id,
        url,
        commande_id: Some(commande.id),
    })
}

// ---------------------------------------------------------------------------------------
// POST /payments/guest-checkout

struct GuestForm {
    prenom: String,
    nom: String,
    email: String,
    telephone: Option<String>,
    adresse: String,
    service_id: String,
    description: Option<String>,
    nombre_pages: Option<i32>,
}

fn guest_form(fields: &Fields) -> Result<GuestForm, ApiError> {
    let prenom = fields.required_line("prenom", 100)?;
    let nom = fields.required_line("nom", 100)?;
    let email = fields.required_line("email", 254)?;
    check_email("email", &email)?;
    let telephone = fields.text("telephone", 30)?;
    if let Some(phone) = &telephone {
        check_phone("telephone", phone)?;
    }
    let adresse = fields.required_text("adresse", 500)?;
    let service_id = fields.required_line("service", 64)?;
    let description = fields.text("description", 5000)?;
    let nombre_pages = fields
        .integer("nombrePages", 1, 100_000)?
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    match fields.boolean("consentementRgpd")? {
        Some(true) => {}
        Some(false) => {
            return Err(field_error(
                "consentementRgpd",
                "the processing of personal data must be accepted (RGPD) to order",
            ))
        }
        None => return Err(field_error("consentementRgpd", "required (true)")),
    }
    Ok(GuestForm {
        prenom,
        nom,
        email,
        telephone,
        adresse,
        service_id,
        description,
        nombre_pages,
    })
}

/// A guest orders one service: the pending order (with a hashed activation token) is
/// recorded once Stripe created its session; the account is created when the payment
/// arrives.
#[utoipa::path(
    post,
    path = "/payments/guest-checkout",
    tag = "payments",
    request_body = GuestCheckoutRequest,
    responses(
        (status = 200, description = "The session to pay", body = CheckoutAnswer),
        (status = 400, description = "`invalid_field` (naming it: unknown service, consent not given...), `invalid_body`, or `stripe_error`", body = ErrorBody),
        (status = 402, description = "`stripe_error`: Stripe's message", body = ErrorBody),
        (status = 502, description = "`stripe_unavailable`: nothing was recorded", body = ErrorBody),
        (status = 503, description = "`stripe_not_configured`", body = ErrorBody),
    )
)]
pub async fn guest_checkout(
    state: web::Data<AppState>,
    cell: web::Data<StripeCell>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let fields = Fields::from_body(body.into_inner())?;
    let form = guest_form(&fields)?;
    let service = state
        .settings
        .stripe
        .service(&form.service_id)
        .ok_or_else(|| {
            field_error(
                "service",
                format!(
                    "unknown service `{}` (see GET /payments/services)",
                    form.service_id
                ),
            )
        })?;
    let client = cell.client(&state)?;

    let id = new_id();
    let description = form
        .description
        .clone()
        .unwrap_or_else(|| service.description.clone());
    let stripe = &state.settings.stripe;
    let params = CheckoutParams {
        idempotency_key: format!("facture-guest-{id}"),
        product_name: service.name.clone(),
        product_description: short(&service.description),
        amount_cents: service.amount_cents,
        customer_email: form.email.clone(),
        client_reference_id: id.clone(),
        metadata: HashMap::from([
            ("pending_commande_id".to_owned(), id.clone()),
            ("service".to_owned(), service.id.clone()),
            ("source".to_owned(), stripe.source.clone()),
        ]),
        success_url: state.settings.checkout_success_url(),
        cancel_url: state.settings.checkout_cancel_url(),
        expires_at: expires_at(&state),
    };
    let (session_id, url) = create_session(client, params).await?;

    // A token for this order's activation, stored hashed only (the engine issues the one it
    // mails when the payment arrives and replaces this one).
    let token = facture_core::random_hex(32);
    let hours = i64::try_from(state.settings.auth.activation_token_lifetime_hours).unwrap_or(72);
    store::insert_guest(
        &state.db,
        &NewGuestCheckout {
            id: id.clone(),
            order: NewPendingOrder {
                prenom: form.prenom,
                nom: form.nom,
                email: form.email,
                telephone: form.telephone,
                adresse: Some(form.adresse),
                titre: service.name.clone(),
                description,
                amount_cents: service.amount_cents,
                nombre_pages: form.nombre_pages,
                session_id: session_id.clone(),
            },
            activation_token_sha256: sha256_hex(token.as_bytes()),
            token_expires_at: now() + chrono::Duration::hours(hours),
        },
    )
    .await?;
    tracing::info!(pending = %id, session = %session_id, service = %service.id, "guest checkout session created");
    Ok(HttpResponse::Ok().json(CheckoutAnswer {
        session_id,
        url,
        commande_id: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Fields {
        Fields::from_body(v).unwrap()
    }

    #[test]
    fn emails_and_phones_are_checked() {
        for ok in ["a@b.fr", "jeanne.martin+livre@example.co.uk"] {
            assert!(check_email("email", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.fr", "a@.fr", "a@b.", "a b@c.fr", "a@b@c.fr", "a@b..fr",
        ] {
            assert!(check_email("email", bad).is_err(), "{bad}");
        }
        for ok in ["+33 6 12 34 56 78", "06.12.34.56.78", "(01) 23-45-67-89"] {
            assert!(check_phone("telephone", ok).is_ok(), "{ok}");
        }
        for bad in ["12", "06 12 34 56 78 90 12 34", "call me", "06+12345678"] {
            assert!(check_phone("telephone", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_read_strictly() {
        let f = fields(json!({"a": "  x  ", "b": 3, "c": true, "d": "", "e": 1.5, "f": "l1\nl2"}));
        assert_eq!(f.text("a", 10).unwrap().as_deref(), Some("x"));
        assert!(f.text("b", 10).is_err());
        assert_eq!(f.text("d", 10).unwrap(), None);
        assert!(f.required_text("d", 10).is_err());
        assert!(f.required_line("f", 10).is_err());
        assert_eq!(f.integer("b", 1, 5).unwrap(), Some(3));
        assert!(f.integer("b", 4, 5).is_err());
        assert!(f.integer("e", 1, 5).is_err());
        assert_eq!(f.boolean("c").unwrap(), Some(true));
        assert!(f.boolean("a").is_err());
        let err = f.text("a", 0).unwrap_err();
        assert_eq!(err.code, "invalid_field");
        assert!(err.message.contains("`a`"), "{}", err.message);
        assert!(Fields::from_body(json!([1])).is_err());
    }

    #[test]
    fn stripe_failures_map_to_gateway_errors() {
        let e = stripe_error(StripeCallError::Refused {
            status: 402,
            kind: "card_error".into(),
            message: "declined".into(),
        });
        assert_eq!((e.status.as_u16(), e.code), (402, "stripe_error"));
        assert!(e.message.contains("declined"));
        let e = stripe_error(StripeCallError::Refused {
            status: 401,
            kind: "authentication_error".into(),
            message: "Invalid API Key provided: sk_test_****1234".into(),
        });
        assert_eq!((e.status.as_u16(), e.code), (502, "stripe_unavailable"));
        assert!(!e.message.contains("sk_test"), "the key is not shown");
        let e = stripe_error(StripeCallError::Unavailable("down".into()));
        assert_eq!((e.status.as_u16(), e.code), (502, "stripe_unavailable"));
    }
}
