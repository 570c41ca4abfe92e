//! Checkout end to end against a local Stripe stand-in: the endpoints create Checkout
//! Sessions the way Stripe expects them, record the order only once Stripe answered, and
//! a signed `checkout.session.completed` for that session then pays and invoices it (for a
//! guest: creates the account and mails the activation link).
//!
//! The stand-in (an actix-web server on 127.0.0.1, port 0) checks what Stripe checks on
//! `POST /v1/checkout/sessions` (secret key, form encoding, required parameters, amounts,
//! expiry bounds), honours `Idempotency-Key` like Stripe (same key and parameters: the same
//! session again; other parameters: `idempotency_error`), serves
//! `GET /v1/checkout/sessions/{id}`, and can be told to refuse, fail or answer late.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use facture_core::checkout as store;
use facture_core::db::models::User;
use facture_core::orders::{self, NewOrder};
use facture_core::testkit::smtp::SmtpSink;
use figment::Figment;
use serde_json::{json, Value};

use crate::accounts::{invoiced, signed_in, Res, WAIT};
use crate::helpers::{eventually, spawn_app_with, TestApp};
use crate::stripe::{completed, evt, session};

const KEY: &str = "sk_test_facture_standin_4242";
const SOURCE: &str = "correction-site";

// ---------------------------------------------------------------------------------------
// The Stripe stand-in

/// What the stand-in does with the next request.
#[derive(Debug, Clone)]
enum Behaviour {
    /// What Stripe does.
    Normal,
    /// Answers `status` with `body`, creating nothing.
    Fail(u16, String),
    /// Creates the session, then answers only after this long (the answer is lost when
    /// the caller gave up first: Stripe did the work, the client never heard of it).
    Late(Duration),
}

/// One `POST /v1/checkout/sessions` as received.
#[derive(Debug, Clone)]
struct Seen {
    idempotency_key: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    form: BTreeMap<String, String>,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    sessions: HashMap<String, Value>,
    /// key → (the parameters first used, the session answered).
    by_key: HashMap<String, (BTreeMap<String, String>, String)>,
    script: VecDeque<Behaviour>,
    always: Option<Behaviour>,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Inner>>);

struct StripeStandIn {
    shared: Shared,
    url: String,
    handle: ServerHandle,
}

/// A Stripe error answer: status and `{"error": {...}}`.
#[derive(Debug)]
struct Refusal(u16, Value);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.0).unwrap()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(&self.1)
    }
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Refusal {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    Refusal(status, json!({ "error": error }))
}

fn fixture_session() -> Value {
    let path = format!(
        "{}/tests/fixtures/stripe/checkout_session.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

/// Stripe's checks on a session creation; `Err` is Stripe's 400.
fn check_params(form: &BTreeMap<String, String>) -> Result<(), Refusal> {
    let missing = |p: &str| {
        stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            &format!("Missing required param: {p}."),
        )
    };
    let get = |p: &str| form.get(p).filter(|v| !v.is_empty());
    match get("mode").map(String::as_str) {
        Some("payment") => {}
        Some(other) => {
            return Err(stripe_error(
                400,
                "invalid_request_error",
                None,
                &format!("Invalid mode: {other}"),
            ))
        }
        None => return Err(missing("mode")),
    }
    for p in [
        "success_url",
        "line_items[0][quantity]",
        "line_items[0][price_data][currency]",
        "line_items[0][price_data][unit_amount]",
        "line_items[0][price_data][product_data][name]",
    ] {
        if get(p).is_none() {
            return Err(missing(p));
        }
    }
    if form["line_items[0][price_data][currency]"] != "eur" {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            None,
            "Invalid currency.",
        ));
    }
    let amount: i64 = form["line_items[0][price_data][unit_amount]"]
        .parse()
        .map_err(|_| {
            stripe_error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_integer"),
                "Invalid integer: line_items[0][price_data][unit_amount]",
            )
        })?;
    if amount < 50 {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            Some("amount_too_small"),
            "The Checkout Session's total amount due must add up to at least €0.50 eur",
        ));
    }
    if let Some(at) = get("expires_at") {
        let at: i64 = at.parse().unwrap_or(0);
        let now = chrono::Utc::now().timestamp();
        if at < now + 30 * 60 - 60 || at > now + 24 * 3600 + 60 {
            return Err(stripe_error(
                400,
                "invalid_request_error",
                None,
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
            ));
        }
    }
    for url in ["success_url", "cancel_url"] {
        if let Some(u) = get(url) {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(stripe_error(
                    400,
                    "invalid_request_error",
                    Some("url_invalid"),
                    "Not a valid URL",
                ));
            }
        }
    }
    Ok(())
}

/// The session Stripe would answer for `form`.
fn session_for(form: &BTreeMap<String, String>) -> Value {
    let id = format!("cs_test_{}", facture_core::random_hex(24));
    let mut s = fixture_session();
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), json!(v)))
        })
        .collect();
    let amount: i64 = form["line_items[0][price_data][unit_amount]"]
        .parse()
        .unwrap();
    s["id"] = json!(id);
    s["url"] = json!(format!("https://checkout.stripe.com/c/pay/{id}"));
    s["status"] = json!("open");
    s["payment_status"] = json!("unpaid");
    s["payment_intent"] = Value::Null;
    s["mode"] = json!("payment");
    s["currency"] = json!("eur");
    s["amount_subtotal"] = json!(amount);
    s["amount_total"] = json!(amount);
    s["metadata"] = Value::Object(metadata);
    s["created"] = json!(chrono::Utc::now().timestamp());
    for (field, param) in [
        ("customer_email", "customer_email"),
        ("client_reference_id", "client_reference_id"),
        ("success_url", "success_url"),
        ("cancel_url", "cancel_url"),
    ] {
        s[field] = form.get(param).map_or(Value::Null, |v| json!(v));
    }
    if let Some(at) = form.get("expires_at") {
        s["expires_at"] = json!(at.parse::<i64>().unwrap());
    }
    s
}

/// `application/x-www-form-urlencoded` → key/value pairs (`None` when malformed).
fn parse_form(body: &[u8]) -> Option<BTreeMap<String, String>> {
    fn decode(s: &[u8]) -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut kv = pair.splitn(2, |b| *b == b'=');
            let k = decode(kv.next()?)?;
            let v = decode(kv.next().unwrap_or_default())?;
            Some((k, v))
        })
        .collect()
}

fn authorised(req: &HttpRequest) -> Result<(), Refusal> {
    let auth = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok());
    if auth == Some(format!("Bearer {KEY}").as_str()) {
        Ok(())
    } else {
        Err(stripe_error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided",
        ))
    }
}

async fn create_session(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, Refusal> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("Content-Type");
    let Some(form) = parse_form(&body) else {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            None,
            "Invalid request body",
        ));
    };
    let seen = Seen {
        idempotency_key: header("Idempotency-Key"),
        authorization: header("Authorization"),
        content_type: content_type.clone(),
        form: form.clone(),
    };
    let behaviour = {
        let mut inner = shared.0.lock().unwrap();
        inner.seen.push(seen.clone());
        inner
            .script
            .pop_front()
            .or_else(|| inner.always.clone())
            .unwrap_or(Behaviour::Normal)
    };
    authorised(&req)?;
    if content_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(stripe_error(
            400,
            "invalid_request_error",
            None,
            "Stripe accepts form-encoded request bodies",
        ));
    }
    let delay = match behaviour {
        Behaviour::Fail(status, body) => {
            return Ok(
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                    .content_type("application/json")
                    .body(body),
            )
        }
        Behaviour::Late(d) => Some(d),
        Behaviour::Normal => None,
    };
    check_params(&form)?;
    let answer = {
        let mut inner = shared.0.lock().unwrap();
        let previous = seen
            .idempotency_key
            .as_ref()
            .and_then(|k| inner.by_key.get(k).cloned());
        match previous {
            Some((params, _)) if params != form => Err(stripe_error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            )),
            Some((_, id)) => Ok(inner.sessions[&id].clone()),
            None => {
                let s = session_for(&form);
                let id = s["id"].as_str().unwrap().to_owned();
                inner.sessions.insert(id.clone(), s.clone());
                if let Some(k) = &seen.idempotency_key {
                    inner.by_key.insert(k.clone(), (form.clone(), id));
                }
                Ok(s)
            }
        }
    };
    if let Some(d) = delay {
        actix_web::rt::time::sleep(d).await;
    }
    answer.map(|s| HttpResponse::Ok().json(s))
}

async fn retrieve_session(
    req: HttpRequest,
    id: web::Path<String>,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, Refusal> {
    authorised(&req)?;
    let found = shared.0.lock().unwrap().sessions.get(id.as_str()).cloned();
    match found {
        Some(s) => Ok(HttpResponse::Ok().json(s)),
        None => Err(stripe_error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such checkout.session: '{id}'"),
        )),
    }
}

impl StripeStandIn {
    async fn start() -> Self {
        let shared = Shared::default();
        let data = web::Data::new(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/checkout/sessions", web::post().to(create_session))
                .route(
                    "/v1/checkout/sessions/{id}",
                    web::get().to(retrieve_session),
                )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("stand-in binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        StripeStandIn {
            shared,
            url: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.0.lock().unwrap().seen.clone()
    }

    fn sessions_created(&self) -> usize {
        self.shared.0.lock().unwrap().sessions.len()
    }

    fn script(&self, steps: impl IntoIterator<Item = Behaviour>) {
        self.shared.0.lock().unwrap().script.extend(steps);
    }

    fn always(&self, behaviour: Option<Behaviour>) {
        self.shared.0.lock().unwrap().always = behaviour;
    }

    /// Marks `key` as used by an earlier request with other parameters (one whose session
    /// facture never recorded): Stripe answers `idempotency_error` to its reuse.
    fn use_key_elsewhere(&self, key: &str) {
        let mut inner = self.shared.0.lock().unwrap();
        let other = BTreeMap::from([("mode".to_owned(), "payment".to_owned())]);
        inner
            .by_key
            .insert(key.to_owned(), (other, "cs_test_unrecorded".into()));
    }

    /// Lets a session expire, as Stripe does when nobody pays it in time.
    fn expire(&self, id: &str) {
        let mut inner = self.shared.0.lock().unwrap();
        let s = inner.sessions.get_mut(id).expect("known session");
        s["status"] = json!("expired");
        s["url"] = Value::Null;
    }

    /// The settings that point facture at this stand-in.
    fn configure(&self, f: Figment) -> Figment {
        f.merge(("stripe.api_base", self.url.clone()))
            .merge(("stripe.secret_key", KEY))
            .merge(("stripe.source", SOURCE))
            .merge((
                "stripe.success_url",
                "https://correction.example/merci?s={CHECKOUT_SESSION_ID}",
            ))
            .merge(("stripe.cancel_url", "https://correction.example/panier"))
            .merge(("stripe.request_timeout_ms", 400))
            .merge(("stripe.max_attempts", 2))
    }
}

impl Drop for StripeStandIn {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

async fn app_with_stripe(stripe: &StripeStandIn) -> TestApp {
    spawn_app_with(|f| stripe.configure(f)).await
}

// ---------------------------------------------------------------------------------------
// Helpers

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Res {
    app.call("POST", path, token, Some(body)).await
}

fn guest_body() -> Value {
    json!({
        "prenom": "Jeanne",
        "nom": "Martin",
        "email": "jeanne.martin@example.fr",
        "telephone": "+33 6 12 34 56 78",
        "adresse": "3 rue Racine\n69002 Lyon",
        "service": "correction-approfondie",
        "description": "Roman policier, 280 pages, relecture complète.",
        "nombrePages": 280,
        "consentementRgpd": true,
    })
}

async fn pending_of(app: &TestApp, email: &str) -> Vec<facture_core::db::models::PendingCommande> {
    store::pending_by_email(&app.db, email).await.unwrap()
}

async fn orders_of(app: &TestApp, user: &User) -> Vec<facture_core::db::models::Commande> {
    store::orders_of(&app.db, &user.id).await.unwrap()
}

fn field(seen: &Seen, name: &str) -> String {
    seen.form
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("Stripe received no `{name}`: {:?}", seen.form))
}

/// What every session request must carry.
fn assert_stripe_request(seen: &Seen, amount: i64, name: &str, email: &str) {
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(field(seen, "mode"), "payment");
    assert_eq!(field(seen, "line_items[0][quantity]"), "1");
    assert_eq!(field(seen, "line_items[0][price_data][currency]"), "eur");
    assert_eq!(
        field(seen, "line_items[0][price_data][unit_amount]"),
        amount.to_string()
    );
    assert_eq!(
        field(seen, "line_items[0][price_data][product_data][name]"),
        name
    );
    assert_eq!(field(seen, "customer_email"), email);
    assert_eq!(field(seen, "metadata[source]"), SOURCE);
    assert_eq!(
        field(seen, "success_url"),
        "https://correction.example/merci?s={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(
        field(seen, "cancel_url"),
        "https://correction.example/panier"
    );
    let expires: i64 = field(seen, "expires_at").parse().unwrap();
    let expected = chrono::Utc::now().timestamp() + 60 * 60;
    assert!((expires - expected).abs() < 120, "expires_at {expires}");
    assert!(seen.idempotency_key.is_some(), "an Idempotency-Key");
}

// ---------------------------------------------------------------------------------------
// Tests

#[actix_web::test]
async fn the_price_list_is_served() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let (status, body) = app.get_json("/payments/services").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["currency"], "eur");
    let services = body["services"].as_array().unwrap();
    assert_eq!(services.len(), app.settings.stripe.services.len());
    for (shown, configured) in services.iter().zip(&app.settings.stripe.services) {
        assert_eq!(shown["id"], configured.id.as_str());
        assert_eq!(shown["name"], configured.name.as_str());
        assert_eq!(shown["description"], configured.description.as_str());
        assert_eq!(shown["amountCents"], configured.amount_cents);
    }
    assert!(services.iter().any(|s| s["id"] == "correction-approfondie"));
}

#[actix_web::test]
async fn a_signed_in_customer_checks_out_pays_and_is_invoiced() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let (user, token) = signed_in(&app, "camille@example.fr", "USER").await;

    let res = post(
        &app,
        "/payments/create-checkout-session",
        Some(&token),
        json!({
            "titre": "Correction d'un roman",
            "description": "Relecture orthotypographique, 320 pages.",
            "amountCents": 12_000,
        }),
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");
    let body = res.json();
    let session_id = body["sessionId"].as_str().unwrap().to_owned();
    let commande_id = body["commandeId"].as_str().unwrap().to_owned();
    assert!(session_id.starts_with("cs_test_"));
    assert_eq!(
        body["url"],
        format!("https://checkout.stripe.com/c/pay/{session_id}")
    );

    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_stripe_request(&seen[0], 12_000, "Correction d'un roman", &user.email);
    assert_eq!(field(&seen[0], "metadata[commande_id]"), commande_id);
    assert_eq!(field(&seen[0], "client_reference_id"), commande_id);
    assert_eq!(
        field(
            &seen[0],
            "line_items[0][price_data][product_data][description]"
        ),
        "Relecture orthotypographique, 320 pages."
    );
    assert_eq!(
        seen[0].idempotency_key.as_deref(),
        Some(format!("facture-commande-{commande_id}").as_str())
    );

    let order = orders::find(&app.db, &commande_id).await.unwrap().unwrap();
    assert_eq!(order.user_id, user.id);
    assert_eq!(
        order.stripe_session_id.as_deref(),
        Some(session_id.as_str())
    );
    assert_eq!(order.amount_cents, 12_000);
    assert_eq!(
        (order.payment_status.as_str(), order.statut.as_str()),
        ("pending", "EN_ATTENTE")
    );
    assert!(!order.is_guest);

    // Stripe tells facture the session was paid: the order is paid and invoiced.
    let (status, ack) = app.deliver(completed(&evt(), &session_id, 12_000)).await;
    assert_eq!(status, 200, "{ack}");
    let invoice = invoiced(&app, &commande_id).await;
    assert_eq!(invoice.amount_cents, 12_000);
    let paid = orders::find(&app.db, &commande_id).await.unwrap().unwrap();
    assert_eq!(paid.payment_status, "paid");

    // A paid order cannot be checked out again.
    let again = post(
        &app,
        "/payments/create-checkout-session",
        Some(&token),
        json!({ "commandeId": commande_id }),
    )
    .await;
    assert_eq!(
        (again.status, again.code().as_str()),
        (409, "already_paid"),
        "{again:?}"
    );
}

#[actix_web::test]
async fn an_existing_order_reuses_its_open_session_and_replaces_an_expired_one() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let (user, token) = signed_in(&app, "reuse@example.fr", "USER").await;
    let checkout = |body: Value| {
        let token = token.clone();
        let app = &app;
        async move { post(app, "/payments/create-checkout-session", Some(&token), body).await }
    };

    let first =
        checkout(json!({"titre": "Mémoire", "description": "80 pages", "amountCents": 4_990}))
            .await;
    assert_eq!(first.status, 200, "{first:?}");
    let commande_id = first.json()["commandeId"].as_str().unwrap().to_owned();
    let first_session = first.json()["sessionId"].as_str().unwrap().to_owned();

    // While the session is open, paying the order again gives the same session.
    let again = checkout(json!({ "commandeId": commande_id })).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["sessionId"], first_session.as_str());
    assert_eq!(again.json()["url"], first.json()["url"]);
    assert_eq!(stripe.sessions_created(), 1);

    // Once it expired, a new one replaces it, under a key derived from the order and the
    // session it replaces.
    stripe.expire(&first_session);
    let renewed = checkout(json!({ "commandeId": commande_id })).await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    let second_session = renewed.json()["sessionId"].as_str().unwrap().to_owned();
    assert_ne!(second_session, first_session);
    let seen = stripe.seen();
    let last = seen.last().unwrap();
    assert_stripe_request(last, 4_990, "Mémoire", &user.email);
    assert_eq!(
        last.idempotency_key.as_deref(),
        Some(format!("facture-commande-{commande_id}-after-{first_session}").as_str())
    );
    let order = orders::find(&app.db, &commande_id).await.unwrap().unwrap();
    assert_eq!(
        order.stripe_session_id.as_deref(),
        Some(second_session.as_str())
    );
    assert_eq!(orders_of(&app, &user).await.len(), 1, "still one order");

    // The key facture would use next was spent by an attempt it never recorded (its
    // session was never shown, so never paid): Stripe refuses its reuse, facture asks again
    // under a fresh key derived from it.
    stripe.expire(&second_session);
    let key = format!("facture-commande-{commande_id}-after-{second_session}");
    stripe.use_key_elsewhere(&key);
    let res = checkout(json!({ "commandeId": commande_id })).await;
    assert_eq!(res.status, 200, "{res:?}");
    let third_session = res.json()["sessionId"].as_str().unwrap().to_owned();
    let seen = stripe.seen();
    let [.., refused, accepted] = seen.as_slice() else {
        panic!("two requests")
    };
    assert_eq!(refused.idempotency_key.as_deref(), Some(key.as_str()));
    let fresh_key = accepted.idempotency_key.clone().unwrap();
    assert!(fresh_key.starts_with(&format!("{key}-")), "{fresh_key}");
    let order = orders::find(&app.db, &commande_id).await.unwrap().unwrap();
    assert_eq!(
        order.stripe_session_id.as_deref(),
        Some(third_session.as_str())
    );

    // An order made elsewhere (its session unknown to Stripe) gets a real session.
    let made = orders::create_order(
        &app.db,
        &NewOrder {
            email: user.email.clone(),
            prenom: user.prenom.clone(),
            nom: user.nom.clone(),
            titre: "Relecture finale".into(),
            description: "Épreuves".into(),
            amount_cents: 14_900,
            session_id: session(),
        },
    )
    .await
    .unwrap();
    let res = checkout(json!({ "commandeId": made.id })).await;
    assert_eq!(res.status, 200, "{res:?}");
    let fresh = res.json()["sessionId"].as_str().unwrap().to_owned();
    let stored = orders::find(&app.db, &made.id).await.unwrap().unwrap();
    assert_eq!(stored.stripe_session_id.as_deref(), Some(fresh.as_str()));
    assert_eq!(
        field(stripe.seen().last().unwrap(), "metadata[commande_id]"),
        made.id
    );

    // Someone else's order does not exist for this customer.
    let (_, other_token) = signed_in(&app, "other@example.fr", "USER").await;
    let res = post(
        &app,
        "/payments/create-checkout-session",
        Some(&other_token),
        json!({ "commandeId": commande_id }),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (404, "not_found"),
        "{res:?}"
    );
    let res = checkout(json!({ "commandeId": "no-such-order" })).await;
    assert_eq!(res.status, 404, "{res:?}");
}

#[actix_web::test]
async fn the_signed_in_checkout_needs_a_token_and_valid_fields() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let (user, token) = signed_in(&app, "fields@example.fr", "USER").await;

    let res = post(
        &app,
        "/payments/create-checkout-session",
        None,
        json!({"titre": "x", "description": "y", "amountCents": 1000}),
    )
    .await;
    assert_eq!(res.status, 401, "{res:?}");

    let cases = [
        (json!({"description": "y", "amountCents": 1000}), "titre"),
        (
            json!({"titre": "  ", "description": "y", "amountCents": 1000}),
            "titre",
        ),
        (json!({"titre": "x", "amountCents": 1000}), "description"),
        (json!({"titre": "x", "description": "y"}), "amountCents"),
        (
            json!({"titre": "x", "description": "y", "amountCents": 10}),
            "amountCents",
        ),
        (
            json!({"titre": "x", "description": "y", "amountCents": "1000"}),
            "amountCents",
        ),
        (
            json!({"titre": "x", "description": "y", "amountCents": 10.5}),
            "amountCents",
        ),
        (json!({"commandeId": 42}), "commandeId"),
    ];
    for (body, name) in cases {
        let res = post(
            &app,
            "/payments/create-checkout-session",
            Some(&token),
            body.clone(),
        )
        .await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (400, "invalid_field"),
            "{body}: {res:?}"
        );
        assert!(
            res.json()["message"]
                .as_str()
                .unwrap()
                .contains(&format!("`{name}`")),
            "{body}: {res:?}"
        );
    }
    let both = post(
        &app,
        "/payments/create-checkout-session",
        Some(&token),
        json!({"commandeId": "x", "titre": "x", "description": "y", "amountCents": 1000}),
    )
    .await;
    assert_eq!((both.status, both.code().as_str()), (400, "invalid_body"));
    assert!(
        stripe.seen().is_empty(),
        "Stripe is never asked for an invalid request"
    );
    assert!(orders_of(&app, &user).await.is_empty());
}

#[actix_web::test]
async fn a_guest_checks_out_pays_gets_an_account_and_the_activation_mail() {
    let stripe = StripeStandIn::start().await;
    let smtp = SmtpSink::start().await;
    let url = smtp.url();
    let app = spawn_app_with(|f| {
        stripe
            .configure(f)
            .merge(("mail.transport", "smtp"))
            .merge(("mail.smtp_url", url))
    })
    .await;
    let email = "jeanne.martin@example.fr";

    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(res.status, 200, "{res:?}");
    let session_id = res.json()["sessionId"].as_str().unwrap().to_owned();
    assert!(res.json()["url"].as_str().unwrap().ends_with(&session_id));

    let pending = store::find_pending_by_session(&app.db, &session_id)
        .await
        .unwrap()
        .expect("the pending order");
    let service = app
        .settings
        .stripe
        .service("correction-approfondie")
        .unwrap()
        .clone();
    assert_eq!(
        (pending.prenom.as_str(), pending.nom.as_str()),
        ("Jeanne", "Martin")
    );
    assert_eq!(pending.email, email);
    assert_eq!(pending.telephone.as_deref(), Some("+33 6 12 34 56 78"));
    assert_eq!(pending.adresse.as_deref(), Some("3 rue Racine\n69002 Lyon"));
    assert_eq!(pending.titre, service.name);
    assert_eq!(
        pending.description,
        "Roman policier, 280 pages, relecture complète."
    );
    assert_eq!(pending.amount_cents, service.amount_cents);
    assert_eq!(pending.nombre_pages, Some(280));
    assert_eq!(pending.status, "open");
    assert!(!pending.is_processed);
    // The activation token is stored hashed (SHA-256 hex of 32 random bytes), with its expiry.
    let hashed = pending
        .activation_token
        .clone()
        .expect("an activation token");
    assert_eq!(hashed.len(), 64);
    assert!(hashed.chars().all(|c| c.is_ascii_hexdigit()));
    let hours = i64::try_from(app.settings.auth.activation_token_lifetime_hours).unwrap();
    let expires = pending.token_expires_at.expect("an expiry");
    let expected = facture_core::db::now() + chrono::Duration::hours(hours);
    assert!((expires - expected).num_seconds().abs() < 120, "{expires}");

    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_stripe_request(&seen[0], service.amount_cents, &service.name, email);
    assert_eq!(field(&seen[0], "metadata[pending_commande_id]"), pending.id);
    assert_eq!(field(&seen[0], "metadata[service]"), service.id);
    assert_eq!(field(&seen[0], "client_reference_id"), pending.id);
    assert_eq!(
        seen[0].idempotency_key.as_deref(),
        Some(format!("facture-guest-{}", pending.id).as_str())
    );

    // The payment arrives: an (inactive) account, a paid and invoiced order, the mails.
    let (status, ack) = app
        .deliver(completed(&evt(), &session_id, service.amount_cents))
        .await;
    assert_eq!(status, 200, "{ack}");
    let order = eventually("the guest's order", WAIT, || async {
        orders::find_by_session(&app.db, &session_id).await.unwrap()
    })
    .await;
    let invoice = invoiced(&app, &order.id).await;
    assert_eq!(invoice.amount_cents, service.amount_cents);
    assert!(order.is_guest);
    let user = orders::find_user(&app.db, &order.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.email, email);
    assert!(!user.is_active, "the account waits for activation");
    let processed = store::find_pending(&app.db, &pending.id)
        .await
        .unwrap()
        .unwrap();
    assert!(processed.is_processed);
    assert_eq!(processed.commande_id.as_deref(), Some(order.id.as_str()));

    let mails = smtp.wait_for(3, WAIT).await;
    let to_guest: Vec<_> = mails
        .iter()
        .filter(|m| m.recipients == [email])
        .map(|m| m.parse())
        .collect();
    let activation = to_guest
        .iter()
        .find(|m| m.attachments.is_empty())
        .expect("the activation mail");
    assert!(activation.text.as_deref().unwrap_or("").contains("token="));
    assert!(to_guest.iter().any(|m| m.subject.contains(&invoice.number)));
}

#[actix_web::test]
async fn guest_fields_are_validated_one_by_one() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let with = |name: &str, value: Value| {
        let mut body = guest_body();
        body[name] = value;
        body
    };
    let without = |name: &str| {
        let mut body = guest_body();
        body.as_object_mut().unwrap().remove(name);
        body
    };
    let cases = [
        (without("prenom"), "prenom"),
        (with("prenom", json!("   ")), "prenom"),
        (with("prenom", json!(12)), "prenom"),
        (with("prenom", json!("x".repeat(101))), "prenom"),
        (without("nom"), "nom"),
        (with("nom", json!("Mar\ntin")), "nom"),
        (without("email"), "email"),
        (with("email", json!("jeanne")), "email"),
        (with("email", json!("jeanne@example")), "email"),
        (with("email", json!("je anne@example.fr")), "email"),
        (with("telephone", json!("appelez-moi")), "telephone"),
        (with("telephone", json!("12")), "telephone"),
        (without("adresse"), "adresse"),
        (with("adresse", json!("")), "adresse"),
        (without("service"), "service"),
        (with("service", json!("traduction")), "service"),
        (with("description", json!("x".repeat(5001))), "description"),
        (with("description", json!(["a"])), "description"),
        (with("nombrePages", json!(0)), "nombrePages"),
        (with("nombrePages", json!("280")), "nombrePages"),
        (with("nombrePages", json!(2.5)), "nombrePages"),
        (with("consentementRgpd", json!(false)), "consentementRgpd"),
        (without("consentementRgpd"), "consentementRgpd"),
        (with("consentementRgpd", json!("oui")), "consentementRgpd"),
    ];
    for (body, name) in cases {
        let res = post(&app, "/payments/guest-checkout", None, body.clone()).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (400, "invalid_field"),
            "{name}: {res:?}"
        );
        let message = res.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(&format!("`{name}`")), "{name}: {message}");
    }
    let unknown = post(
        &app,
        "/payments/guest-checkout",
        None,
        with("service", json!("traduction")),
    )
    .await;
    assert!(unknown.json()["message"]
        .as_str()
        .unwrap()
        .contains("traduction"));

    let res = app
        .call_raw(
            "POST",
            "/payments/guest-checkout",
            None,
            Some(b"[1, 2]".to_vec()),
        )
        .await;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_body"));
    let res = app
        .call_raw(
            "POST",
            "/payments/guest-checkout",
            None,
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!((res.status, res.code().as_str()), (400, "invalid_body"));

    // Optional fields may be left out.
    let mut minimal = guest_body();
    for optional in ["telephone", "description", "nombrePages"] {
        minimal.as_object_mut().unwrap().remove(optional);
    }
    let res = post(&app, "/payments/guest-checkout", None, minimal).await;
    assert_eq!(res.status, 200, "{res:?}");
    let pending = pending_of(&app, "jeanne.martin@example.fr").await;
    assert_eq!(
        pending.len(),
        1,
        "only the valid request left a pending order"
    );
    assert_eq!(pending[0].telephone, None);
    assert_eq!(pending[0].nombre_pages, None);
    let service = app
        .settings
        .stripe
        .service("correction-approfondie")
        .unwrap();
    assert_eq!(pending[0].description, service.description);
    assert_eq!(
        stripe.seen().len(),
        1,
        "Stripe is only asked for the valid request"
    );
}

#[actix_web::test]
async fn stripe_refusals_pass_through_and_leave_nothing_behind() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let email = "jeanne.martin@example.fr";

    let refusal = json!({"error": {
        "type": "invalid_request_error",
        "code": "amount_too_small",
        "message": "The Checkout Session's total amount due must add up to at least €0.50 eur",
    }});
    stripe.script([Behaviour::Fail(400, refusal.to_string())]);
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (400, "stripe_error"),
        "{res:?}"
    );
    assert!(
        res.json()["message"]
            .as_str()
            .unwrap()
            .contains("at least €0.50"),
        "Stripe's message is shown: {res:?}"
    );
    assert_eq!(stripe.seen().len(), 1, "a refusal is not retried");

    let declined = json!({"error": {
        "type": "card_error",
        "code": "card_declined",
        "message": "Your card was declined.",
    }});
    stripe.script([Behaviour::Fail(402, declined.to_string())]);
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (402, "stripe_error"),
        "{res:?}"
    );
    assert!(res.json()["message"].as_str().unwrap().contains("declined"));

    assert!(
        pending_of(&app, email).await.is_empty(),
        "no pending order left behind"
    );

    // The signed-in flow alike: no order without a session.
    let (user, token) = signed_in(&app, "refused@example.fr", "USER").await;
    stripe.script([Behaviour::Fail(400, refusal.to_string())]);
    let res = post(
        &app,
        "/payments/create-checkout-session",
        Some(&token),
        json!({"titre": "x", "description": "y", "amountCents": 1000}),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (400, "stripe_error"),
        "{res:?}"
    );
    assert!(orders_of(&app, &user).await.is_empty());
}

#[actix_web::test]
async fn stripe_outages_answer_502_and_leave_nothing_behind() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let email = "jeanne.martin@example.fr";
    let (user, token) = signed_in(&app, "outage@example.fr", "USER").await;

    let outages = [
        Behaviour::Fail(
            500,
            json!({"error": {"type": "api_error", "message": "Something went wrong"}}).to_string(),
        ),
        Behaviour::Fail(503, "<html>Service Unavailable</html>".into()),
        // Stripe creates the session but the answer never arrives in time.
        Behaviour::Late(Duration::from_millis(1_500)),
    ];
    for outage in outages {
        stripe.always(Some(outage.clone()));
        let before = stripe.seen().len();
        let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (502, "stripe_unavailable"),
            "{outage:?}: {res:?}"
        );
        let seen = stripe.seen();
        let attempts = &seen[before..];
        assert_eq!(
            attempts.len(),
            2,
            "{outage:?}: retried up to stripe.max_attempts"
        );
        assert_eq!(
            attempts[0].idempotency_key, attempts[1].idempotency_key,
            "a retry carries the same Idempotency-Key"
        );
        assert!(
            pending_of(&app, email).await.is_empty(),
            "{outage:?}: nothing recorded"
        );

        let res = post(
            &app,
            "/payments/create-checkout-session",
            Some(&token),
            json!({"titre": "x", "description": "y", "amountCents": 1000}),
        )
        .await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (502, "stripe_unavailable"),
            "{res:?}"
        );
        assert!(
            orders_of(&app, &user).await.is_empty(),
            "{outage:?}: no order"
        );
    }

    // Stripe back: it works again.
    stripe.always(None);
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(pending_of(&app, email).await.len(), 1);
}

#[actix_web::test]
async fn unreachable_or_unconfigured_stripe_is_reported() {
    // Nothing listens there: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn_app_with(|f| {
        f.merge(("stripe.api_base", format!("http://127.0.0.1:{port}")))
            .merge(("stripe.secret_key", KEY))
            .merge(("stripe.request_timeout_ms", 400))
    })
    .await;
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (502, "stripe_unavailable"),
        "{res:?}"
    );
    assert!(pending_of(&app, "jeanne.martin@example.fr")
        .await
        .is_empty());

    // A key Stripe does not accept: facture's configuration, not the customer's problem.
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_with(|f| {
        stripe
            .configure(f)
            .merge(("stripe.secret_key", "sk_test_revoked"))
    })
    .await;
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (502, "stripe_unavailable"),
        "{res:?}"
    );
    assert_eq!(
        stripe.seen().len(),
        1,
        "an authentication failure is not retried"
    );
    assert!(pending_of(&app, "jeanne.martin@example.fr")
        .await
        .is_empty());

    // No secret key: checkout is not offered, the price list still is.
    let app = spawn_app_with(|f| f).await;
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (503, "stripe_not_configured"),
        "{res:?}"
    );
    assert_eq!(app.get_json("/payments/services").await.0, 200);
}

#[actix_web::test]
async fn a_lost_answer_is_retried_with_the_same_key_and_gives_one_session_and_one_order() {
    let stripe = StripeStandIn::start().await;
    let app = app_with_stripe(&stripe).await;
    let email = "jeanne.martin@example.fr";

    // Stripe creates the session but its answer comes too late; the retry, same key,
    // is answered from Stripe's idempotency cache: the same session.
    stripe.script([Behaviour::Late(Duration::from_millis(1_500))]);
    let res = post(&app, "/payments/guest-checkout", None, guest_body()).await;
    assert_eq!(res.status, 200, "{res:?}");
    let seen = stripe.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    assert_eq!(seen[0].form, seen[1].form, "the same parameters");
    assert_eq!(stripe.sessions_created(), 1);
    let pending = pending_of(&app, email).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].stripe_session_id.as_deref(),
        res.json()["sessionId"].as_str()
    );

    // The same for a signed-in customer's new order.
    let (user, token) = signed_in(&app, "retry@example.fr", "USER").await;
    stripe.script([Behaviour::Late(Duration::from_millis(1_500))]);
    let res = post(
        &app,
        "/payments/create-checkout-session",
        Some(&token),
        json!({"titre": "Relecture", "description": "Nouvelle", "amountCents": 2_000}),
    )
    .await;
    assert_eq!(res.status, 200, "{res:?}");
    let seen = stripe.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].idempotency_key, seen[3].idempotency_key);
    assert_eq!(stripe.sessions_created(), 2);
    let orders = orders_of(&app, &user).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(
        orders[0].stripe_session_id.as_deref(),
        res.json()["sessionId"].as_str()
    );

    // And the session recorded is the one that gets paid.
    let session_id = res.json()["sessionId"].as_str().unwrap().to_owned();
    assert_eq!(
        app.deliver(completed(&evt(), &session_id, 2_000)).await.0,
        200
    );
    invoiced(&app, &orders[0].id).await;
}
