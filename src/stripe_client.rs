//! The Stripe API calls checkout makes: create a Checkout Session, and retrieve one.
//!
//! Built on `async-stripe` (0.41): its `Client::from_url` points the client at
//! `stripe.api_base` (a local stand-in in tests), its `RequestStrategy::Idempotent` sends
//! the `Idempotency-Key` header, and its `CreateCheckoutSession` params are form-encoded
//! the way Stripe expects (`line_items[0][price_data][unit_amount]=…`).
//!
//! Each call is bounded by `stripe.request_timeout_ms` and retried up to
//! `stripe.max_attempts` times on network errors, timeouts, 409, 429 and 5xx — always with
//! the same idempotency key, so a request Stripe executed but whose answer was lost is
//! answered from Stripe's idempotency cache instead of creating a second session.
//! (async-stripe's own retrying strategies draw a fresh random key per call, which is why
//! the retries live here.)
//!
//! Responses are read into small structs holding only the fields facture uses, so a newer
//! Stripe API version cannot break decoding.

use std::collections::HashMap;
use std::time::Duration;

use facture_core::config::StripeSettings;
use serde::Deserialize;
use stripe::{
    CheckoutSessionMode, Client, CreateCheckoutSession, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionLineItemsPriceDataProductData,
    Currency, ErrorType, RequestStrategy, StripeError,
};

/// What a Checkout Session is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutParams {
    /// Sent as `Idempotency-Key`: derived from the order, so a retry never makes a second session.
    pub idempotency_key: String,
    /// The line's product name (the order title).
    pub product_name: String,
    pub product_description: Option<String>,
    /// Tax-inclusive amount, euro cents.
    pub amount_cents: i64,
    pub customer_email: String,
    pub client_reference_id: String,
    pub metadata: HashMap<String, String>,
    pub success_url: String,
    pub cancel_url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A Checkout Session as far as facture reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    #[serde(default)]
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub payment_status: Option<String>,
}

impl SessionInfo {
    pub fn is_open(&self) -> bool {
        self.status.as_deref() == Some("open")
    }
}

/// Why a Stripe call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeCallError {
    /// Stripe answered and refused (4xx): the request itself is at fault.
    #[error("Stripe refused the request ({status} {kind}): {message}")]
    Refused {
        status: u16,
        /// Stripe's error type (`invalid_request_error`, `idempotency_error`, …).
        kind: String,
        message: String,
    },
    /// Stripe could not be reached, timed out, failed (5xx) or answered unreadably.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
}

impl StripeCallError {
    /// The key was used before with other parameters (an earlier, unrecorded attempt).
    pub fn is_idempotency_conflict(&self) -> bool {
        matches!(self, StripeCallError::Refused { kind, .. } if kind == "idempotency_error")
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, StripeCallError::Refused { status: 404, .. })
    }

    /// Worth another attempt with the same idempotency key.
    fn is_retryable(&self) -> bool {
        match self {
            StripeCallError::Unavailable(_) => true,
            // 409: the same key is being processed right now; 429: rate limited.
            StripeCallError::Refused { status, .. } => matches!(status, 409 | 429),
        }
    }
}

impl From<StripeError> for StripeCallError {
    fn from(e: StripeError) -> Self {
        match e {
            StripeError::Stripe(r) if (400..500).contains(&r.http_status) => {
                StripeCallError::Refused {
                    status: r.http_status,
                    kind: error_type(&r.error_type).to_owned(),
                    message: r
                        .message
                        .unwrap_or_else(|| format!("Stripe answered {}", r.http_status)),
                }
            }
            StripeError::Stripe(r) => StripeCallError::Unavailable(format!(
                "Stripe answered {}{}",
                r.http_status,
                r.message.map(|m| format!(": {m}")).unwrap_or_default()
            )),
            // A body that is neither the expected object nor a Stripe error we can read
            // (async-stripe 0.41 only reads errors whose `code` it knows).
            StripeError::JSONSerialize(e) => {
                StripeCallError::Unavailable(format!("unreadable answer from Stripe: {e}"))
            }
            StripeError::Timeout => StripeCallError::Unavailable("timed out".into()),
            other => StripeCallError::Unavailable(other.to_string()),
        }
    }
}

/// Stripe's name for an error type (async-stripe's `Display` does not give it back).
fn error_type(t: &ErrorType) -> &'static str {
    match t {
        ErrorType::Api => "api_error",
        ErrorType::Connection => "api_connection_error",
        ErrorType::Authentication => "authentication_error",
        ErrorType::Card => "card_error",
        ErrorType::IdempotencyError => "idempotency_error",
        ErrorType::InvalidRequest => "invalid_request_error",
        ErrorType::RateLimit => "rate_limit_error",
        ErrorType::Validation => "validation_error",
        ErrorType::Unknown => "unknown_error",
    }
}

/// One client per server worker; cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    client: Client,
    timeout: Duration,
    max_attempts: u32,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// The client for `settings`, or `None` when no secret key is configured.
    /// `stripe.api_base` must be an absolute URL (`Settings::validate` checks it).
    pub fn from_settings(settings: &StripeSettings) -> Option<Self> {
        let key = settings.secret_key.as_deref().filter(|k| !k.is_empty())?;
        // async-stripe replaces the URL's path with `/v1/...`: only scheme, host and port count.
        let client = Client::from_url(settings.api_base.as_str(), key);
        Some(Self {
            client,
            timeout: Duration::from_millis(settings.request_timeout_ms),
            max_attempts: settings.max_attempts.max(1),
        })
    }

    /// Creates a payment-mode Checkout Session for one euro line. Returns (id, url).
    pub async fn create_checkout_session(
        &self,
        params: &CheckoutParams,
    ) -> Result<(String, String), StripeCallError> {
        let form = checkout_form(params);
        let client = self
            .client
            .clone()
            .with_strategy(RequestStrategy::Idempotent(params.idempotency_key.clone()));
        let session: SessionInfo = self
            .with_retries("create checkout session", || {
                client.post_form::<SessionInfo, _>("/checkout/sessions", &form)
            })
            .await?;
        let url = session.url.filter(|u| !u.is_empty()).ok_or_else(|| {
            StripeCallError::Unavailable(format!(
                "Stripe returned session {} without a URL",
                session.id
            ))
        })?;
        Ok((session.id, url))
    }

    /// The session, or `None` when Stripe does not know it.
    pub async fn retrieve_checkout_session(
        &self,
        id: &str,
    ) -> Result<Option<SessionInfo>, StripeCallError> {
        let path = format!("/checkout/sessions/{id}");
        match self
            .with_retries("retrieve checkout session", || {
                self.client.get::<SessionInfo>(&path)
            })
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn with_retries<T, F>(&self, what: &str, call: F) -> Result<T, StripeCallError>
    where
        F: Fn() -> stripe::Response<T>,
    {
        let mut attempt = 1;
        loop {
            let outcome = match tokio::time::timeout(self.timeout, call()).await {
                Ok(result) => result.map_err(StripeCallError::from),
                Err(_) => Err(StripeCallError::Unavailable(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ))),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.max_attempts => {
                    let pause = Duration::from_millis(100u64 << (attempt - 1).min(5));
                    tracing::warn!(call = what, attempt, error = %e, "Stripe call failed; retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::warn!(call = what, attempt, error = %e, "Stripe call failed");
                    return Err(e);
                }
            }
        }
    }
}

/// The form Stripe receives (async-stripe's types; it encodes them).
fn checkout_form(p: &CheckoutParams) -> CreateCheckoutSession<'_> {
    let mut form = CreateCheckoutSession::new();
    form.mode = Some(CheckoutSessionMode::Payment);
    form.line_items = Some(vec![CreateCheckoutSessionLineItems {
        quantity: Some(1),
        price_data: Some(CreateCheckoutSessionLineItemsPriceData {
            currency: Currency::EUR,
            unit_amount: Some(p.amount_cents),
            product_data: Some(CreateCheckoutSessionLineItemsPriceDataProductData {
                name: p.product_name.clone(),
                description: p.product_description.clone().filter(|d| !d.is_empty()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    form.customer_email = Some(&p.customer_email);
    form.client_reference_id = Some(&p.client_reference_id);
    form.metadata = Some(p.metadata.clone());
    form.success_url = Some(&p.success_url);
    form.cancel_url = Some(&p.cancel_url);
    form.expires_at = Some(p.expires_at);
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, kind: &str) -> StripeCallError {
        StripeCallError::Refused {
            status,
            kind: kind.into(),
            message: "msg".into(),
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(StripeCallError::Unavailable("x".into()).is_retryable());
        assert!(refused(429, "rate_limit_error").is_retryable());
        assert!(refused(409, "idempotency_error").is_retryable());
        assert!(!refused(400, "invalid_request_error").is_retryable());
        assert!(!refused(402, "card_error").is_retryable());
        assert!(refused(400, "idempotency_error").is_idempotency_conflict());
        assert!(refused(404, "invalid_request_error").is_not_found());
    }

    #[test]
    fn stripe_errors_keep_their_status_type_and_message() {
        let from = |status: u16, t: ErrorType| {
            StripeCallError::from(StripeError::Stripe(stripe::RequestError {
                http_status: status,
                error_type: t,
                message: Some("msg".into()),
                ..Default::default()
            }))
        };
        assert_eq!(
            from(400, ErrorType::IdempotencyError),
            refused(400, "idempotency_error")
        );
        assert!(from(400, ErrorType::IdempotencyError).is_idempotency_conflict());
        assert_eq!(from(402, ErrorType::Card), refused(402, "card_error"));
        assert!(matches!(
            from(500, ErrorType::Api),
            StripeCallError::Unavailable(_)
        ));
        assert!(matches!(
            StripeCallError::from(StripeError::Timeout),
            StripeCallError::Unavailable(_)
        ));
    }

    #[test]
    fn a_missing_key_means_no_client() {
        use figment::providers::Format;
        let mut settings = facture_core::config::Settings::from_figment(figment::Figment::from(
            figment::providers::Toml::string(facture_core::config::DEFAULT_TOML),
        ))
        .unwrap()
        .stripe;
        assert!(StripeClient::from_settings(&settings).is_none());
        settings.secret_key = Some(String::new());
        assert!(StripeClient::from_settings(&settings).is_none());
        settings.secret_key = Some("sk_test_x".into());
        settings.api_base = "http://127.0.0.1:9".into();
        assert!(StripeClient::from_settings(&settings).is_some());
    }
}
