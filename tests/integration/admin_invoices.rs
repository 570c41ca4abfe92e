//! `/admin/factures`: listing (pages, filters, literal search, sorting), stats, details,
//! the checked PDF download, regenerate, resend over real SMTP, status changes, and
//! DELETE that cancels without destroying.

use facture_core::invoices;
use facture_core::storage::sha256_hex;
use facture_core::testkit::smtp::SmtpSink;
use serde_json::{json, Value};

use crate::accounts::{admin_token, enc, invoiced_order, pdf_path, signed_in, WAIT};
use crate::helpers::{eventually, spawn_app, spawn_app_with, with_smtp};

fn numbers(body: &Value) -> Vec<String> {
    body["invoices"]
        .as_array()
        .expect("invoices")
        .iter()
        .map(|i| i["number"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn the_listing_pages_filters_searches_literally_and_sorts() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, a) = invoiced_order(&app, "alice@example.fr", "Correction 100% \"bio\"", 12_000).await;
    let (_, b) = invoiced_order(&app, "bob@example.fr", "Relecture l'été_2026", 4_990).await;
    let (_, c) = invoiced_order(&app, "carole@example.fr", "Traduction", 30_000).await;

    let res = app.get_as("/admin/factures", &admin).await;
    assert_eq!(res.status, 200, "{res:?}");
    let body = res.json();
    assert_eq!(
        numbers(&body),
        [c.number.as_str(), b.number.as_str(), a.number.as_str()],
        "newest first"
    );
    let first = &body["invoices"][2];
    assert_eq!(first["id"], a.id.as_str());
    assert_eq!(first["amount"], 12_000);
    assert_eq!(first["amountFormatted"], "120,00\u{a0}€");
    assert_eq!(first["status"], "SENT");
    assert_eq!(first["pdfAvailable"], true);
    assert!(first["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["commande"]["titre"], "Correction 100% \"bio\"");
    assert_eq!(first["commande"]["statut"], "EN_COURS");
    assert_eq!(first["commande"]["client"]["email"], "alice@example.fr");
    assert_eq!(first["commande"]["client"]["nom"], "Durand");
    assert_eq!(
        body["pagination"],
        json!({"page": 1, "limit": 20, "total": 3, "totalPages": 1,
               "hasNextPage": false, "hasPreviousPage": false})
    );

    // Pages.
    let p1 = app.get_as("/admin/factures?limit=2", &admin).await.json();
    assert_eq!(numbers(&p1), [c.number.as_str(), b.number.as_str()]);
    assert_eq!(p1["pagination"]["totalPages"], 2);
    assert_eq!(p1["pagination"]["hasNextPage"], true);
    let p2 = app
        .get_as("/admin/factures?limit=2&page=2", &admin)
        .await
        .json();
    assert_eq!(numbers(&p2), [a.number.as_str()]);
    assert_eq!(p2["pagination"]["hasNextPage"], false);
    assert_eq!(p2["pagination"]["hasPreviousPage"], true);
    let beyond = app.get_as("/admin/factures?limit=2&page=9", &admin).await;
    assert_eq!(beyond.status, 200);
    assert_eq!(numbers(&beyond.json()), Vec::<String>::new());
    assert_eq!(beyond.json()["pagination"]["total"], 3);

    // Bad parameters: 400 naming the parameter.
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("page=0", "page"),
        ("page=-3", "page"),
        ("status=PAYEE", "status"),
        ("sortBy=price", "sortBy"),
        ("sortOrder=up", "sortOrder"),
        ("page=1&page=2", "page"),
    ] {
        let res = app
            .get_as(&format!("/admin/factures?{query}"), &admin)
            .await;
        assert_eq!(res.status, 400, "{query}: {res:?}");
        assert_eq!(res.code(), "invalid_query");
        let message = res.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(&format!("`{name}`")), "{query}: {message}");
    }

    // Search: number, title, email, name; case-insensitive; wildcards literal.
    let search = |term: &str| {
        let (app, admin) = (&app, &admin);
        let path = format!("/admin/factures?search={}", enc(term));
        async move {
            let res = app.get_as(&path, admin).await;
            assert_eq!(res.status, 200, "{path}: {res:?}");
            numbers(&res.json())
        }
    };
    assert_eq!(search(&a.number.to_lowercase()).await, [a.number.as_str()]);
    assert_eq!(search("TRADUCTION").await, [c.number.as_str()]);
    assert_eq!(search("BOB@EXAMPLE").await, [b.number.as_str()]);
    assert_eq!(search("DURAND").await.len(), 3, "last name");
    assert_eq!(search("milie durand").await.len(), 3, "first and last name");
    assert_eq!(
        search("%").await,
        [a.number.as_str()],
        "% matches itself only"
    );
    assert_eq!(search("100%").await, [a.number.as_str()]);
    assert_eq!(
        search("_").await,
        [b.number.as_str()],
        "_ matches itself only"
    );
    assert_eq!(search("\"bio\"").await, [a.number.as_str()]);
    assert_eq!(search("l'été").await, [b.number.as_str()]);
    assert_eq!(
        search("'; DROP TABLE invoices; --").await,
        Vec::<String>::new()
    );
    assert_eq!(search("\\").await, Vec::<String>::new());
    assert_eq!(search("   ").await.len(), 3, "blank search: no filter");

    // Sorting.
    let sorted = |q: &str| {
        let (app, admin) = (&app, &admin);
        let path = format!("/admin/factures?{q}");
        async move { numbers(&app.get_as(&path, admin).await.json()) }
    };
    assert_eq!(
        sorted("sortBy=amount&sortOrder=asc").await,
        [b.number.as_str(), a.number.as_str(), c.number.as_str()]
    );
    assert_eq!(
        sorted("sortBy=amount").await,
        [c.number.as_str(), a.number.as_str(), b.number.as_str()]
    );
    assert_eq!(
        sorted("sortBy=number&sortOrder=asc").await,
        [a.number.as_str(), b.number.as_str(), c.number.as_str()]
    );

    // Status filter.
    let put = app
        .call(
            "PUT",
            &format!("/admin/factures/{}", b.id),
            Some(&admin),
            Some(json!({"status": "PAID"})),
        )
        .await;
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(sorted("status=PAID").await, [b.number.as_str()]);
    assert_eq!(sorted("status=SENT&sortBy=status").await.len(), 2);
    assert_eq!(sorted("status=OVERDUE").await, Vec::<String>::new());
}

#[actix_web::test]
async fn stats_count_amounts_statuses_and_files() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let empty = app.get_as("/admin/factures/stats", &admin).await;
    assert_eq!(empty.status, 200, "{empty:?}");
    assert_eq!(empty.json()["total"], 0);
    assert_eq!(empty.json()["tauxPaiement"], 0.0);

    invoiced_order(&app, "s1@example.fr", "Un", 1_584_732).await;
    invoiced_order(&app, "s2@example.fr", "Deux", 1_000).await;
    let (_, third) = invoiced_order(&app, "s3@example.fr", "Trois", 2_000).await;
    let del = app
        .call(
            "DELETE",
            &format!("/admin/factures/{}", third.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, 200, "{del:?}");

    let stats = app.get_as("/admin/factures/stats", &admin).await.json();
    assert_eq!(stats["total"], 3);
    assert_eq!(
        stats["montantTotal"], 1_585_732,
        "cancelled invoices excluded"
    );
    assert_eq!(stats["montantTotalFormate"], "15\u{a0}857,32\u{a0}€");
    assert_eq!(stats["parStatut"]["SENT"]["count"], 2);
    assert_eq!(stats["parStatut"]["CANCELLED"]["count"], 1);
    assert_eq!(stats["parStatut"]["CANCELLED"]["montant"], 2_000);
    assert_eq!(stats["parStatut"]["PAID"]["count"], 0);
    assert_eq!(stats["fichiers"]["count"], 3);
    assert!(stats["fichiers"]["averageSize"].as_i64().unwrap() > 500);
    assert_eq!(stats["tauxPaiement"], 66.7);
}

#[actix_web::test]
async fn download_checks_the_file_and_regenerate_repairs_it() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (order, invoice) = invoiced_order(&app, "pdf@example.fr", "Correction", 12_000).await;
    let base = format!("/admin/factures/{}", invoice.id);

    let details = app.get_as(&base, &admin).await;
    assert_eq!(details.status, 200, "{details:?}");
    let d = details.json();
    assert_eq!(d["number"], invoice.number.as_str());
    assert_eq!(d["amountHt"], 10_000);
    assert_eq!(d["taxAmount"], 2_000);
    assert_eq!(d["commande"]["id"], order.id.as_str());
    assert_eq!(d["client"]["email"], "pdf@example.fr");
    assert_eq!(d["pdfSha256"], invoice.pdf_sha256.as_deref().unwrap());
    assert!(!d["deliveries"].as_array().unwrap().is_empty());

    let res = app.get_as(&format!("{base}/download"), &admin).await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/pdf")
    );
    assert_eq!(
        res.header("content-disposition"),
        Some(format!("attachment; filename=\"{}.pdf\"", invoice.number))
    );
    assert_eq!(
        res.header("cache-control").as_deref(),
        Some("private, no-cache")
    );
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(res.body.starts_with(b"%PDF-"));
    assert_eq!(sha256_hex(&res.body), invoice.pdf_sha256.clone().unwrap());

    // Tampered on disk: refused.
    let path = pdf_path(&app, &invoice);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"% tampered\n");
    std::fs::write(&path, &bytes).unwrap();
    let res = app.get_as(&format!("{base}/download"), &admin).await;
    assert_eq!(
        (res.status, res.code()),
        (409, "file_corrupted".into()),
        "{res:?}"
    );

    // Regenerate: same number, a file matching the recorded SHA-256 again.
    let res = app
        .call("POST", &format!("{base}/regenerate"), Some(&admin), None)
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    let regenerated = res.json();
    assert_eq!(regenerated["number"], invoice.number.as_str());
    let row = invoices::find(&app.db, &invoice.id).await.unwrap().unwrap();
    assert_eq!(row.number, invoice.number);
    assert_eq!(regenerated["pdfSha256"], row.pdf_sha256.as_deref().unwrap());
    let on_disk = std::fs::read(pdf_path(&app, &row)).unwrap();
    assert_eq!(Some(sha256_hex(&on_disk)), row.pdf_sha256);
    let res = app.get_as(&format!("{base}/download"), &admin).await;
    assert_eq!(res.status, 200);
    assert_eq!(Some(sha256_hex(&res.body)), row.pdf_sha256);

    // Deleted from disk: 404 file_missing, until regenerated.
    std::fs::remove_file(pdf_path(&app, &row)).unwrap();
    let res = app.get_as(&format!("{base}/download"), &admin).await;
    assert_eq!(
        (res.status, res.code()),
        (404, "file_missing".into()),
        "{res:?}"
    );
    let res = app
        .call("POST", &format!("{base}/regenerate"), Some(&admin), None)
        .await;
    assert_eq!(res.status, 200, "{res:?}");
    assert_eq!(
        app.get_as(&format!("{base}/download"), &admin).await.status,
        200
    );

    // Ids.
    for path in [
        "/admin/factures/not-a-uuid",
        "/admin/factures/not-a-uuid/download",
        "/admin/factures/42",
    ] {
        let res = app.get_as(path, &admin).await;
        assert_eq!(
            (res.status, res.code()),
            (400, "invalid_id".into()),
            "{path}"
        );
    }
    let unknown = "/admin/factures/6f1c1b55-4a3e-4c55-9d0e-9b8f4b1f2a77";
    for (method, path) in [
        ("GET", unknown.to_owned()),
        ("GET", format!("{unknown}/download")),
        ("POST", format!("{unknown}/regenerate")),
        ("POST", format!("{unknown}/resend")),
        ("DELETE", unknown.to_owned()),
    ] {
        let res = app.call(method, &path, Some(&admin), None).await;
        assert_eq!(res.status, 404, "{method} {path}: {res:?}");
    }
}

#[actix_web::test]
async fn status_changes_follow_the_rules_and_delete_only_cancels() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (_, invoice) = invoiced_order(&app, "status@example.fr", "Correction", 5_000).await;
    let base = format!("/admin/factures/{}", invoice.id);
    let put = |status: Value| {
        let (app, admin, base) = (&app, &admin, &base);
        async move {
            app.call("PUT", base, Some(admin), Some(json!({ "status": status })))
                .await
        }
    };

    let paid = put(json!("PAID")).await;
    assert_eq!(paid.status, 200, "{paid:?}");
    assert_eq!(paid.json()["status"], "PAID");
    assert_eq!(paid.json()["allowedTransitions"], json!(["CANCELLED"]));

    let back = put(json!("GENERATED")).await;
    assert_eq!(
        (back.status, back.code()),
        (409, "invalid_transition".into())
    );
    let message = back.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("PAID") && message.contains("GENERATED"),
        "{message}"
    );

    for bad in [json!("paid"), json!("DRAFT"), json!(3)] {
        let res = put(bad.clone()).await;
        assert_eq!(res.status, 400, "{bad}: {res:?}");
    }
    let res = app
        .call_raw("PUT", &base, Some(&admin), Some(b"{not json".to_vec()))
        .await;
    assert_eq!((res.status, res.code()), (400, "invalid_body".into()));

    // DELETE cancels: the row, its number and its file stay.
    let del = app.call("DELETE", &base, Some(&admin), None).await;
    assert_eq!(del.status, 200, "{del:?}");
    let body = del.json();
    assert_eq!(body["invoice"]["status"], "CANCELLED");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("cancelled, not deleted"), "{message}");
    assert!(message.contains("French law"), "{message}");
    let row = invoices::find(&app.db, &invoice.id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.number.as_str()),
        ("CANCELLED", invoice.number.as_str())
    );
    assert!(pdf_path(&app, &row).exists(), "the PDF is kept");
    assert_eq!(
        app.get_as(&format!("{base}/download"), &admin).await.status,
        200
    );
    assert_eq!(
        app.get_as(&base, &admin).await.json()["status"],
        "CANCELLED"
    );

    // Cancelled is final.
    let again = put(json!("PAID")).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "invalid_transition".into())
    );
    let resend = app
        .call("POST", &format!("{base}/resend"), Some(&admin), None)
        .await;
    assert_eq!(
        (resend.status, resend.code()),
        (409, "invoice_cancelled".into())
    );

    // Its number is never reused.
    let (_, next) = invoiced_order(&app, "next@example.fr", "Suite", 1_000).await;
    assert_eq!(next.sequence, invoice.sequence + 1);
}

#[actix_web::test]
async fn resend_mails_the_invoice_again_over_smtp() {
    let smtp = SmtpSink::start().await;
    let app = spawn_app_with(with_smtp(&smtp)).await;
    let admin = admin_token(&app).await;
    let (_, user_token) = signed_in(&app, "user@example.fr", "USER").await;
    let (_, invoice) = invoiced_order(&app, "resend@example.fr", "Correction", 7_500).await;
    let to_customer = || {
        smtp.messages()
            .into_iter()
            .filter(|m| m.recipients == ["resend@example.fr"])
            .collect::<Vec<_>>()
    };
    eventually("the first mail", WAIT, || async {
        (to_customer().len() == 1).then_some(())
    })
    .await;
    let path = format!("/admin/factures/{}/resend", invoice.id);

    assert_eq!(
        app.call("POST", &path, Some(&user_token), None)
            .await
            .status,
        403
    );
    let res = app.call("POST", &path, Some(&admin), None).await;
    assert_eq!(res.status, 200, "{res:?}");
    let outcome = res.json();
    assert_eq!(outcome["status"], "sent");
    assert!(outcome["deliveryId"].as_str().is_some());

    let mails = eventually("the invoice mailed again", WAIT, || async {
        let mails = to_customer();
        (mails.len() == 2).then_some(mails)
    })
    .await;
    let resent = mails[1].parse();
    assert!(
        resent.subject.contains(&invoice.number),
        "{}",
        resent.subject
    );
    let pdf = std::fs::read(pdf_path(&app, &invoice)).unwrap();
    assert_eq!(resent.attachments[0].bytes, pdf);

    // The delivery is listed with the invoice.
    let details = app
        .get_as(&format!("/admin/factures/{}", invoice.id), &admin)
        .await
        .json();
    let ids: Vec<&str> = details["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&outcome["deliveryId"].as_str().unwrap()));
}
