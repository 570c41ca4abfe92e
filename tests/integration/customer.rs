//! `/invoices`: a customer sees and downloads their own invoices, and another customer's
//! invoice is indistinguishable from one that does not exist.

use facture_core::storage::sha256_hex;

use crate::accounts::{admin_token, enc, invoiced_order, signed_in};
use crate::helpers::spawn_app;

#[actix_web::test]
async fn customers_see_only_their_own_invoices() {
    let app = spawn_app().await;
    let (_, alice) = signed_in(&app, "alice@example.fr", "USER").await;
    let (_, bob) = signed_in(&app, "bob@example.fr", "USER").await;
    let admin = admin_token(&app).await;
    let (_, a1) = invoiced_order(&app, "alice@example.fr", "Premier", 1_000).await;
    let (_, a2) = invoiced_order(&app, "alice@example.fr", "Second", 2_000).await;
    let (_, b1) = invoiced_order(&app, "bob@example.fr", "Celui de Bob", 3_000).await;

    let res = app.get_as("/invoices", &alice).await;
    assert_eq!(res.status, 200, "{res:?}");
    let body = res.json();
    let ids: Vec<&str> = body["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a2.id.as_str(), a1.id.as_str()]);
    assert_eq!(body["pagination"]["total"], 2);
    let page = app.get_as("/invoices?limit=1&page=2", &alice).await.json();
    assert_eq!(page["invoices"][0]["id"], a1.id.as_str());
    assert_eq!(page["pagination"]["hasPreviousPage"], true);
    let res = app.get_as("/invoices?limit=101", &alice).await;
    assert_eq!((res.status, res.code()), (400, "invalid_query".into()));
    // `search` is an admin feature: ignored here, never a way to reach others' invoices.
    let res = app
        .get_as(&format!("/invoices?search={}", enc("Bob")), &alice)
        .await;
    assert_eq!(res.json()["pagination"]["total"], 2);

    let own = app.get_as(&format!("/invoices/{}", a1.id), &alice).await;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.json()["number"], a1.number.as_str());
    assert_eq!(own.json()["commande"]["titre"], "Premier");
    assert!(own.json().get("deliveries").is_none(), "admin-only detail");

    let pdf = app
        .get_as(&format!("/invoices/{}/download", a1.id), &alice)
        .await;
    assert_eq!(pdf.status, 200);
    assert_eq!(
        pdf.header("content-type").as_deref(),
        Some("application/pdf")
    );
    assert_eq!(
        pdf.header("content-disposition"),
        Some(format!("attachment; filename=\"{}.pdf\"", a1.number))
    );
    assert_eq!(
        pdf.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(Some(sha256_hex(&pdf.body)), a1.pdf_sha256);

    // Bob's invoice answers exactly like an unknown one.
    let unknown = "/invoices/7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let missing = app.get_as(unknown, &alice).await;
    assert_eq!(missing.status, 404);
    let foreign = app.get_as(&format!("/invoices/{}", b1.id), &alice).await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.code(), missing.code());
    assert_eq!(
        foreign.json()["message"]
            .as_str()
            .unwrap()
            .replace(&b1.id, "ID"),
        missing.json()["message"]
            .as_str()
            .unwrap()
            .replace("7c9e6679-7425-40de-944b-e07fc1f90ae7", "ID")
    );
    let foreign_pdf = app
        .get_as(&format!("/invoices/{}/download", b1.id), &alice)
        .await;
    assert_eq!(
        (foreign_pdf.status, foreign_pdf.code()),
        (404, "not_found".into())
    );
    assert_eq!(
        app.get_as(&format!("/invoices/{}", b1.id), &bob)
            .await
            .status,
        200
    );

    // Ids, and no token.
    let res = app.get_as("/invoices/FAC-2026-000001", &alice).await;
    assert_eq!((res.status, res.code()), (400, "invalid_id".into()));
    assert_eq!(app.call("GET", "/invoices", None, None).await.status, 401);
    assert_eq!(
        app.call("GET", &format!("/invoices/{}/download", a1.id), None, None)
            .await
            .status,
        401
    );
    // A customer is not an admin.
    for path in [
        "/admin/factures".to_owned(),
        format!("/admin/factures/{}", a1.id),
        format!("/admin/factures/{}/download", a1.id),
        "/admin/webhook-events".to_owned(),
        "/admin/deliveries".to_owned(),
    ] {
        let res = app.get_as(&path, &alice).await;
        assert_eq!(
            (res.status, res.code()),
            (403, "forbidden".into()),
            "{path}"
        );
    }

    // Admins see every invoice here too.
    let all = app.get_as("/invoices", &admin).await.json();
    assert_eq!(all["pagination"]["total"], 3);
    assert_eq!(
        app.get_as(&format!("/invoices/{}/download", b1.id), &admin)
            .await
            .status,
        200
    );
}
