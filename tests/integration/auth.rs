//! Authentication: login, tokens and what they open, guest account activation, the
//! `users create-admin` command, and the OpenAPI document matching the routes.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use chrono::Duration as ChronoDuration;
use facture::auth::{decode_token, issue_token, Role};
use facture_core::orders::{self, NewPendingOrder};
use facture_core::storage::sha256_hex;
use facture_core::testkit::smtp::SmtpSink;
use hmac::{Hmac, Mac};
use serde_json::json;

use crate::accounts::{
    admin_token, create_user, invoiced, login, set_active, signed_in, PASSWORD, WAIT,
};
use crate::helpers::{eventually, spawn_app, spawn_app_with, with_smtp, TestApp, SECRETS};
use crate::stripe::{completed, evt, session};

const SECRET: &str = "test-jwt-secret-0123456789abcdef";

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT with any header, signed with HMAC-SHA256 under `key` (or unsigned).
fn craft(header: &str, claims: &serde_json::Value, key: Option<&[u8]>) -> String {
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = match key {
        Some(k) => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(k).unwrap();
            mac.update(signing_input.as_bytes());
            b64url(&mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{signing_input}.{signature}")
}

#[actix_web::test]
async fn login_gives_a_token_that_opens_what_its_role_allows() {
    let app = spawn_app().await;
    let (admin, admin_token) = signed_in(&app, "boss@example.fr", "ADMIN").await;
    let (user, user_token) = signed_in(&app, "client@example.fr", "USER").await;

    // The token: HS256, sub = user id, role, exp = now + lifetime.
    let res = login(&app, "boss@example.fr", PASSWORD).await;
    let body = res.json();
    let claims = decode_token(SECRET, body["token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.sub, admin.id);
    assert_eq!(claims.role, "ADMIN");
    let lifetime = i64::try_from(app.settings.auth.token_lifetime_secs).unwrap();
    assert!((claims.exp - chrono::Utc::now().timestamp() - lifetime).abs() <= 5);
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap())
        .expect("expiresAt is RFC 3339");
    assert_eq!(expires_at.timestamp(), claims.exp);
    assert_eq!(body["user"]["role"], "ADMIN");

    // Emails match whatever their case.
    assert_eq!(login(&app, "BOSS@Example.FR", PASSWORD).await.status, 200);

    // The authorization matrix on an admin route and a customer route.
    let admin_route = "/admin/factures";
    let customer_route = "/invoices";
    let now = chrono::Utc::now().timestamp();
    let expired = issue_token(SECRET, &admin.id, Role::Admin, now - 7200, 3600)
        .unwrap()
        .0;
    let claims = json!({ "sub": admin.id, "role": "ADMIN", "iat": now, "exp": now + 3600 });
    let other_key = craft(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims,
        Some(b"another-secret-entirely-0123456789"),
    );
    let alg_none = craft(r#"{"alg":"none","typ":"JWT"}"#, &claims, None);
    let alg_none_signed = craft(
        r#"{"alg":"none","typ":"JWT"}"#,
        &claims,
        Some(SECRET.as_bytes()),
    );
    let other_alg = craft(
        r#"{"alg":"HS384","typ":"JWT"}"#,
        &claims,
        Some(SECRET.as_bytes()),
    );
    let good_shape = craft(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims,
        Some(SECRET.as_bytes()),
    );
    // Sanity: the same crafting with the right key and algorithm is accepted.
    assert_eq!(app.get_as(admin_route, &good_shape).await.status, 200);
    let tampered = {
        // The user's token with its payload swapped for an ADMIN one.
        let parts: Vec<&str> = user_token.split('.').collect();
        let forged = json!({ "sub": user.id, "role": "ADMIN", "iat": now, "exp": now + 3600 });
        format!(
            "{}.{}.{}",
            parts[0],
            b64url(forged.to_string().as_bytes()),
            parts[2]
        )
    };
    for route in [admin_route, customer_route] {
        let res = app.call("GET", route, None, None).await;
        assert_eq!(
            (res.status, res.code()),
            (401, "unauthorized".into()),
            "{route}"
        );
        for (what, token) in [
            ("garbage", "not-a-jwt"),
            ("expired", expired.as_str()),
            ("another key", other_key.as_str()),
            ("alg none", alg_none.as_str()),
            ("alg none, signed", alg_none_signed.as_str()),
            ("HS384", other_alg.as_str()),
            ("tampered payload", tampered.as_str()),
        ] {
            let res = app.get_as(route, token).await;
            assert_eq!(res.status, 401, "{route} with {what}: {res:?}");
            assert_eq!(res.code(), "unauthorized");
        }
        let basic = app
            .client
            .get(app.url(route))
            .insert_header(("Authorization", "Basic Ym9zczpwYXNz"))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status().as_u16(), 401);
    }
    let res = app.get_as(admin_route, &user_token).await;
    assert_eq!(
        (res.status, res.code()),
        (403, "forbidden".into()),
        "{res:?}"
    );
    assert_eq!(app.get_as(customer_route, &user_token).await.status, 200);
    assert_eq!(app.get_as(admin_route, &admin_token).await.status, 200);

    // A deactivated account loses its access at once, token or not.
    set_active(&app, &user.id, false).await;
    let res = app.get_as(customer_route, &user_token).await;
    assert_eq!(res.status, 401, "{res:?}");
}

#[actix_web::test]
async fn wrong_credentials_answer_the_same_and_inactive_accounts_are_refused() {
    let app = spawn_app().await;
    create_user(&app, "known@example.fr", "USER", true).await;
    create_user(&app, "dormant@example.fr", "USER", false).await;

    let wrong = login(&app, "known@example.fr", "not the password at all").await;
    let unknown = login(&app, "nobody@example.fr", PASSWORD).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(
        wrong.json(),
        unknown.json(),
        "same answer, email known or not"
    );
    assert_eq!(wrong.code(), "invalid_credentials");

    let inactive = login(&app, "dormant@example.fr", PASSWORD).await;
    assert_eq!(
        (inactive.status, inactive.code()),
        (403, "account_inactive".into())
    );
    // Without the password, an inactive account looks like any other failure.
    let guess = login(&app, "dormant@example.fr", "a wrong password").await;
    assert_eq!(guess.json(), unknown.json());

    for body in [
        b"{}".to_vec(),
        b"not json".to_vec(),
        br#"{"email": "known@example.fr"}"#.to_vec(),
        br#"{"email": 3, "password": []}"#.to_vec(),
    ] {
        let res = app.call_raw("POST", "/auth/login", None, Some(body)).await;
        assert_eq!(
            (res.status, res.code()),
            (400, "invalid_body".into()),
            "{res:?}"
        );
    }
}

/// The activation token a guest's mail carries (`...activation?token=<hex>`).
fn token_in(text: &str) -> String {
    let start = text.find("token=").expect("a token in the mail") + "token=".len();
    text[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

#[actix_web::test]
async fn a_guest_activates_the_account_once_then_logs_in() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let guest_session = session();
    orders::create_pending_order(
        &app.db,
        &NewPendingOrder {
            prenom: "Jeanne".into(),
            nom: "Martin".into(),
            email: "jeanne@example.fr".into(),
            telephone: None,
            adresse: None,
            titre: "Relecture de mémoire".into(),
            description: "80 pages".into(),
            amount_cents: 4_990,
            nombre_pages: Some(80),
            session_id: guest_session.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        app.deliver(completed(&evt(), &guest_session, 4_990))
            .await
            .0,
        200
    );
    let order = eventually("the guest's order", WAIT, || async {
        orders::find_by_session(&app.db, &guest_session)
            .await
            .unwrap()
    })
    .await;
    invoiced(&app, &order.id).await;
    let mails = smtp.wait_for(3, WAIT).await;
    let activation = mails
        .iter()
        .filter(|m| m.recipients == ["jeanne@example.fr"])
        .map(|m| m.parse())
        .find(|m| m.attachments.is_empty())
        .expect("the activation mail");
    let token = token_in(activation.text.as_deref().unwrap_or_default());
    assert!(token.len() >= 32, "{token}");

    // No password yet: login fails like any wrong password.
    let before = login(&app, "jeanne@example.fr", "whatever password").await;
    assert_eq!(
        (before.status, before.code()),
        (401, "invalid_credentials".into())
    );

    let activate = |token: String, password: &'static str| {
        let app = &app;
        async move {
            app.call(
                "POST",
                "/auth/activate",
                None,
                Some(json!({ "token": token, "password": password })),
            )
            .await
        }
    };
    let weak = activate(token.clone(), "short").await;
    assert_eq!((weak.status, weak.code()), (400, "weak_password".into()));
    let unknown = activate("00".repeat(32), "a long enough password").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (400, "invalid_token".into())
    );
    let bad_body = app
        .call_raw(
            "POST",
            "/auth/activate",
            None,
            Some(b"{\"token\":1}".to_vec()),
        )
        .await;
    assert_eq!(bad_body.status, 400);

    let done = activate(token.clone(), "mon mot de passe à moi").await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json()["user"]["email"], "jeanne@example.fr");
    let user = orders::find_user(&app.db, &order.user_id)
        .await
        .unwrap()
        .unwrap();
    assert!(user.is_active);

    let after = login(&app, "jeanne@example.fr", "mon mot de passe à moi").await;
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.json()["user"]["role"], "USER");

    // A token works once.
    let again = activate(token, "another long password").await;
    assert_eq!((again.status, again.code()), (400, "invalid_token".into()));
    assert_eq!(
        login(&app, "jeanne@example.fr", "mon mot de passe à moi")
            .await
            .status,
        200,
        "the second use changed nothing"
    );

    // An expired token says so.
    let stale = "ab".repeat(32);
    orders::set_activation_token(
        &app.db,
        &order.id,
        &sha256_hex(stale.as_bytes()),
        facture_core::db::now() - ChronoDuration::hours(1),
    )
    .await
    .unwrap();
    let expired = activate(stale, "yet another password").await;
    assert_eq!(
        (expired.status, expired.code()),
        (400, "token_expired".into())
    );
}

/// Runs the facture binary against the app's database, `stdin` piped in.
async fn facture(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facture"));
    cmd.current_dir(app.dir.path())
        .env("FACTURE__DATABASE__URL", app.test_db.url())
        .env("FACTURE__STRIPE__WEBHOOK_SECRETS", SECRETS[0])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.map(str::to_owned);
    actix_web::rt::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("facture runs");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = input {
            pipe.write_all(input.as_bytes()).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[actix_web::test]
async fn users_create_admin_creates_or_promotes_an_admin() {
    let app = spawn_app().await;
    let out = facture(
        &app,
        &[
            "users",
            "create-admin",
            "--email",
            "root@example.fr",
            "--password-stdin",
        ],
        Some("un mot de passe solide\n"),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let res = login(&app, "root@example.fr", "un mot de passe solide").await;
    assert_eq!(res.status, 200, "{res:?}");
    let token = res.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get_as("/admin/factures/stats", &token).await.status,
        200
    );

    // An existing customer is promoted, keeping its id; without --password-stdin a
    // password is generated and printed.
    let customer = create_user(&app, "promote@example.fr", "USER", true).await;
    let out = facture(
        &app,
        &["users", "create-admin", "--email", "promote@example.fr"],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains(&customer.id), "{stdout}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password "))
        .expect("the generated password is printed")
        .to_owned();
    let res = login(&app, "promote@example.fr", &password).await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(res.json()["user"]["role"], "ADMIN");
    assert_eq!(res.json()["user"]["id"], customer.id.as_str());

    // Too short a password is refused, and nothing changes.
    let out = facture(
        &app,
        &[
            "users",
            "create-admin",
            "--email",
            "weak@example.fr",
            "--password-stdin",
        ],
        Some("short\n"),
    )
    .await;
    assert!(!out.status.success());
    assert_eq!(login(&app, "weak@example.fr", "short").await.status, 401);
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route_and_only_them() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{doc}"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let served: BTreeSet<(String, String)> = facture::routes::openapi::api_routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .chain(
            facture::routes::openapi::OTHER_ROUTES
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert_eq!(
        served, documented,
        "every route is documented, and every documented route exists"
    );

    // And every one of them is really mounted: none falls to the unknown-route answer.
    let admin = admin_token(&app).await;
    for (method, path) in &served {
        let concrete = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        if path.ends_with("/stream") {
            // Endless: only its head is read.
            let res = app
                .client
                .get(app.url(&concrete))
                .insert_header(("Authorization", format!("Bearer {admin}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200, "{path}");
            continue;
        }
        let body = (method != "GET").then(|| b"{}".to_vec());
        let res = app.call_raw(method, &concrete, Some(&admin), body).await;
        let message = res.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !message.starts_with("no route for"),
            "{method} {path} is documented but not mounted"
        );
    }
}
