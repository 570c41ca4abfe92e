//! Helpers for the API tests: accounts with roles, logging in, authenticated requests,
//! and invoiced orders produced the way production produces them (an order, a signed
//! `checkout.session.completed`, the pipeline run to its end).

use std::time::Duration;

use awc::http::header::HeaderMap;
use awc::http::Method;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use facture_core::db::models::{Commande, Invoice, User};
use facture_core::db::schema::users;
use facture_core::db::{new_id, now};
use facture_core::orders::{self, step, NewOrder};
use facture_core::{invoices, with_conn};
use serde_json::Value;

use crate::helpers::{eventually, TestApp};
use crate::stripe::{completed, evt, session};

pub const WAIT: Duration = Duration::from_secs(30);
pub const PASSWORD: &str = "correct horse battery staple";

/// An HTTP answer, kept whole.
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The `error` code of an error body.
    pub fn code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

impl std::fmt::Debug for Res {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
        )
    }
}

/// Percent-encodes a query value (everything but ASCII letters and digits).
pub fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl TestApp {
    /// Sends `method path` with an optional bearer token and an optional raw body.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Res {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = match body {
            Some(b) => req
                .insert_header(("Content-Type", "application/json"))
                .send_body(b)
                .await
                .expect("request"),
            None => req.send().await.expect("request"),
        };
        let body = res.body().limit(20 << 20).await.expect("body").to_vec();
        Res {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body,
        }
    }

    /// Sends `method path` with an optional bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.call_raw(method, path, token, body).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Res {
        self.call("GET", path, Some(token), None).await
    }
}

/// Inserts an account whose password is [`PASSWORD`].
pub async fn create_user(app: &TestApp, email: &str, role: &str, active: bool) -> User {
    let t = now();
    let user = User {
        id: new_id(),
        prenom: "Camille".into(),
        nom: format!("Test-{}", &email[..email.find('@').unwrap_or(email.len())]),
        email: email.into(),
        password_hash: Some(facture::auth::hash_password(PASSWORD).unwrap()),
        role: role.into(),
        is_active: active,
        adresse: None,
        telephone: None,
        created_at: t,
        updated_at: t,
    };
    let u = &user;
    let inserted: Result<usize, facture_core::db::DbError> = async {
        Ok(with_conn!(app.db, write, |conn| {
            diesel::insert_into(users::table)
                .values(u)
                .execute(conn)
                .await
        })?)
    }
    .await;
    assert_eq!(inserted.unwrap(), 1);
    user
}

/// Sets an account's `is_active`.
pub async fn set_active(app: &TestApp, user_id: &str, active: bool) {
    let updated: Result<usize, facture_core::db::DbError> = async {
        Ok(with_conn!(app.db, write, |conn| {
            diesel::update(users::table.find(user_id))
                .set(users::is_active.eq(active))
                .execute(conn)
                .await
        })?)
    }
    .await;
    assert_eq!(updated.unwrap(), 1);
}

pub async fn login(app: &TestApp, email: &str, password: &str) -> Res {
    app.call(
        "POST",
        "/auth/login",
        None,
        Some(serde_json::json!({ "email": email, "password": password })),
    )
    .await
}

/// Creates an account with `role` and returns (user, bearer token).
pub async fn signed_in(app: &TestApp, email: &str, role: &str) -> (User, String) {
    let user = create_user(app, email, role, true).await;
    let res = login(app, email, PASSWORD).await;
    assert_eq!(res.status, 200, "{res:?}");
    let token = res.json()["token"].as_str().expect("a token").to_owned();
    (user, token)
}

pub async fn admin_token(app: &TestApp) -> String {
    signed_in(app, "admin@example.fr", "ADMIN").await.1
}

/// An unpaid order for `email` (the account is created when the email is new).
pub async fn order_for(app: &TestApp, email: &str, title: &str, amount: i64) -> Commande {
    orders::create_order(
        &app.db,
        &NewOrder {
            email: email.into(),
            prenom: "Émilie".into(),
            nom: "Durand".into(),
            titre: title.into(),
            description: "Relecture orthotypographique".into(),
            amount_cents: amount,
            session_id: session(),
        },
    )
    .await
    .expect("order created")
}

/// Waits until the order's pipeline is done and returns its invoice.
pub async fn invoiced(app: &TestApp, commande_id: &str) -> Invoice {
    eventually("the order's pipeline to finish", WAIT, || async {
        let c = orders::find(&app.db, commande_id).await.unwrap()?;
        (c.pipeline.as_deref() == Some(step::DONE)).then_some(())
    })
    .await;
    invoices::find_by_commande(&app.db, commande_id)
        .await
        .unwrap()
        .expect("an invoice")
}

/// Pays `order` with a signed event and waits for its invoice.
pub async fn pay(app: &TestApp, order: &Commande) -> Invoice {
    let s = order.stripe_session_id.clone().expect("session");
    let (status, body) = app.deliver(completed(&evt(), &s, order.amount_cents)).await;
    assert_eq!(status, 200, "{body}");
    invoiced(app, &order.id).await
}

/// An order for `email`, paid and invoiced.
pub async fn invoiced_order(
    app: &TestApp,
    email: &str,
    title: &str,
    amount: i64,
) -> (Commande, Invoice) {
    let order = order_for(app, email, title, amount).await;
    let invoice = pay(app, &order).await;
    (order, invoice)
}

/// The invoice's PDF on disk.
pub fn pdf_path(app: &TestApp, invoice: &Invoice) -> std::path::PathBuf {
    app.settings
        .storage
        .root
        .join(invoice.pdf_path.as_deref().expect("a stored PDF"))
}
