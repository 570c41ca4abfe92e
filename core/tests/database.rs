//! The schema on the engine chosen by the environment (SQLite by default; PostgreSQL when
//! FACTURE_TEST_DATABASE_URL is set): migrations, round trips, unique constraints, and
//! gapless invoice numbering under concurrency.
#![cfg(feature = "testkit")]

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use facture_core::db::models::*;
use facture_core::db::schema::{self, *};
use facture_core::db::{new_id, now, run_migrations_blocking, Db, DbError};
use facture_core::events::{self, Appended, NewEvent};
use facture_core::invoices::{self, NewInvoice};
use facture_core::orders::{self, NewOrder};
use facture_core::testkit::db::TestDb;
use facture_core::with_conn;

fn user(email: &str) -> User {
    let t = now();
    User {
        id: new_id(),
        prenom: "Émile".into(),
        nom: "Zola".into(),
        email: email.into(),
        password_hash: Some("$argon2id$x".into()),
        role: "USER".into(),
        is_active: true,
        adresse: Some("1 rue de Médan".into()),
        telephone: None,
        created_at: t,
        updated_at: t,
    }
}

async fn insert_user(db: &Db, u: &User) -> Result<usize, DbError> {
    Ok(with_conn!(db, write, |conn| {
        diesel::insert_into(users::table)
            .values(u)
            .execute(conn)
            .await
    })?)
}

async fn order(db: &Db, email: &str) -> Commande {
    orders::create_order(
        db,
        &NewOrder {
            email: email.into(),
            prenom: "Ada".into(),
            nom: "Lovelace".into(),
            titre: "Correction".into(),
            description: "Roman, 300 pages".into(),
            amount_cents: 12_000,
            session_id: format!("cs_test_{}", facture_core::random_hex(8)),
        },
    )
    .await
    .expect("order created")
}

fn new_invoice(commande_id: &str) -> NewInvoice {
    NewInvoice {
        commande_id: commande_id.into(),
        amount_cents: 12_000,
        tax_cents: 2_000,
        tax_rate_bp: 2000,
        paid_at: Some(now()),
        due_days: 0,
    }
}

#[tokio::test]
async fn migrations_apply_once_and_are_reported() -> Result<(), DbError> {
    let test_db = TestDb::unmigrated();
    let db = test_db.connect().await;
    assert!(!db.migrations_applied().await.unwrap());
    assert!(run_migrations_blocking(test_db.database_url(), 5_000).unwrap() >= 1);
    assert_eq!(
        run_migrations_blocking(test_db.database_url(), 5_000).unwrap(),
        0
    );
    assert!(db.migrations_applied().await.unwrap());
    assert!(db.ping().await);
    Ok(())
}

#[tokio::test]
async fn every_table_round_trips() -> Result<(), DbError> {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let u = user("emile@example.fr");
    insert_user(&db, &u).await.unwrap();
    let back: User = with_conn!(db, |conn| users::table.find(&u.id).first(conn).await).unwrap();
    assert_eq!(back, u);

    let c = order(&db, "ada@example.fr").await;
    let back: Commande =
        with_conn!(db, |conn| commandes::table.find(&c.id).first(conn).await).unwrap();
    assert_eq!(back, c);

    let issued = invoices::issue(&db, "FAC", new_invoice(&c.id), |n, _| {
        Ok(format!("{{\"n\":\"{n}\"}}"))
    })
    .await
    .unwrap();
    let back = invoices::find(&db, &issued.invoice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, issued.invoice);

    let t = now();
    let pending = PendingCommande {
        id: new_id(),
        prenom: "Jeanne".into(),
        nom: "d'Arc".into(),
        email: "jeanne@example.fr".into(),
        telephone: Some("+33 6 00 00 00 00".into()),
        adresse: None,
        titre: "Relecture".into(),
        description: "Mémoire".into(),
        amount_cents: 4_990,
        nombre_pages: Some(80),
        stripe_session_id: Some("cs_test_pending".into()),
        activation_token: Some("abc".into()),
        token_expires_at: Some(t),
        status: "open".into(),
        is_processed: false,
        user_id: None,
        commande_id: None,
        created_at: t,
        updated_at: t,
    };
    let file = StoredFileRow {
        id: new_id(),
        pending_commande_id: Some(pending.id.clone()),
        commande_id: None,
        original_name: "manuscrit.docx".into(),
        stored_path: "files/x.docx".into(),
        content_type: "application/octet-stream".into(),
        size_bytes: 123_456,
        created_at: t,
    };
    let step = OrderStep {
        id: new_id(),
        commande_id: c.id.clone(),
        step: "render".into(),
        status: "done".into(),
        attempts: 1,
        last_error: None,
        started_at: t,
        finished_at: Some(t),
    };
    let notif = Notification {
        id: new_id(),
        kind: "PAYMENT".into(),
        title: "Paiement".into(),
        message: "Reçu".into(),
        priority: "HIGH".into(),
        data: "{}".into(),
        is_read: false,
        dedupe_key: Some("k1".into()),
        created_at: t,
    };
    let delivery = EmailDelivery {
        id: new_id(),
        kind: "payment_confirmation".into(),
        recipient: "ada@example.fr".into(),
        subject: "Votre facture".into(),
        invoice_id: Some(issued.invoice.id.clone()),
        commande_id: Some(c.id.clone()),
        status: "queued".into(),
        attempts: 0,
        last_error: None,
        dedupe_key: Some("d1".into()),
        sent_at: None,
        created_at: t,
        updated_at: t,
    };
    with_conn!(db, write, |conn| {
        async {
            diesel::insert_into(pending_commandes::table)
                .values(&pending)
                .execute(conn)
                .await?;
            diesel::insert_into(files::table)
                .values(&file)
                .execute(conn)
                .await?;
            diesel::insert_into(order_steps::table)
                .values(&step)
                .execute(conn)
                .await?;
            diesel::insert_into(notifications::table)
                .values(&notif)
                .execute(conn)
                .await?;
            diesel::insert_into(email_deliveries::table)
                .values(&delivery)
                .execute(conn)
                .await
        }
        .await
    })
    .unwrap();
    let (p2, f2, s2, n2, d2): (
        PendingCommande,
        StoredFileRow,
        OrderStep,
        Notification,
        EmailDelivery,
    ) = with_conn!(db, |conn| {
        async {
            Ok::<_, diesel::result::Error>((
                pending_commandes::table
                    .find(&pending.id)
                    .first(conn)
                    .await?,
                files::table.find(&file.id).first(conn).await?,
                order_steps::table.find(&step.id).first(conn).await?,
                notifications::table.find(&notif.id).first(conn).await?,
                email_deliveries::table
                    .find(&delivery.id)
                    .first(conn)
                    .await?,
            ))
        }
        .await
    })
    .unwrap();
    assert_eq!((p2, f2, s2, n2, d2), (pending, file, step, notif, delivery));

    let appended = events::append_batch(
        &db,
        &[NewEvent {
            stripe_event_id: "evt_round_trip".into(),
            event_type: "checkout.session.completed".into(),
            payload: "{\"id\":\"evt_round_trip\"}".into(),
            session_id: Some("cs_x".into()),
        }],
    )
    .await
    .unwrap();
    let Appended::Inserted(id) = &appended[0] else {
        panic!("inserted")
    };
    // SQLite acknowledges into its journal first (a no-op on PostgreSQL).
    events::import_acknowledged(&db, 10).await.unwrap();
    let e = events::get(&db, id).await.unwrap().unwrap();
    assert_eq!(e.stripe_event_id, "evt_round_trip");
    assert_eq!(e.session_id.as_deref(), Some("cs_x"));
    assert_eq!(e.status, "received");

    let watermark = ("journal-round-trip".to_owned(), 42_i64);
    let back: (String, i64) = with_conn!(db, write, |conn| {
        diesel::insert_into(schema::ack_imports::table)
            .values((
                schema::ack_imports::journal_id.eq(&watermark.0),
                schema::ack_imports::seq.eq(watermark.1),
            ))
            .execute(conn)
            .await?;
        schema::ack_imports::table
            .find(&watermark.0)
            .first(conn)
            .await
    })
    .unwrap();
    assert_eq!(back, watermark);
    Ok(())
}

#[tokio::test]
async fn unique_constraints_hold() -> Result<(), DbError> {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    insert_user(&db, &user("same@example.fr")).await.unwrap();
    let err = insert_user(&db, &user("same@example.fr"))
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");

    // Duplicate invoice number: a second row claiming FAC-…-000001 is refused.
    let c1 = order(&db, "a@example.fr").await;
    let c2 = order(&db, "b@example.fr").await;
    let first = invoices::issue(&db, "FAC", new_invoice(&c1.id), |_, _| Ok("{}".into()))
        .await
        .unwrap()
        .invoice;
    let copy = Invoice {
        id: new_id(),
        commande_id: c2.id.clone(),
        ..first.clone()
    };
    let err = with_conn!(db, write, |conn| {
        diesel::insert_into(schema::invoices::table)
            .values(&copy)
            .execute(conn)
            .await
    })
    .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");

    // Duplicate Stripe event id: the append reports it instead of storing it twice.
    let e = NewEvent {
        stripe_event_id: "evt_dup".into(),
        event_type: "x".into(),
        payload: "{}".into(),
        session_id: None,
    };
    let out = events::append_batch(&db, &[e.clone(), e.clone()])
        .await
        .unwrap();
    assert!(matches!(out[0], Appended::Inserted(_)));
    assert_eq!(out[1], Appended::Duplicate);
    assert_eq!(
        events::append_batch(&db, &[e]).await.unwrap(),
        vec![Appended::Duplicate]
    );
    assert_eq!(events::count_acknowledged(&db).await.unwrap(), 1);
    Ok(())
}

/// The webhook's acknowledgement has a connection of its own: with every connection the
/// pipeline and the API share checked out (an overloaded pipeline), an event is still
/// committed at once instead of queueing behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_commits_while_every_shared_connection_is_held() {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let mut held = Vec::new();
    while let Ok(conn) =
        tokio::time::timeout(std::time::Duration::from_millis(200), db.write()).await
    {
        held.push(conn.expect("a connection"));
    }
    assert!(!held.is_empty());

    let event = NewEvent {
        stripe_event_id: "evt_while_busy".into(),
        event_type: "checkout.session.completed".into(),
        payload: "{}".into(),
        session_id: None,
    };
    let appended = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        events::append_batch(&db, &[event]),
    )
    .await
    .expect("the acknowledgement did not wait for the shared connections")
    .expect("appended");
    assert!(matches!(appended[..], [Appended::Inserted(_)]));
    drop(held);
    assert_eq!(events::count_acknowledged(&db).await.unwrap(), 1);
}

fn new_event(stripe_id: &str) -> NewEvent {
    NewEvent {
        stripe_event_id: stripe_id.into(),
        event_type: "checkout.session.completed".into(),
        payload: format!(r#"{{"id":"{stripe_id}"}}"#),
        session_id: Some(format!("cs_{stripe_id}")),
    }
}

fn inserted_id(appended: &Appended) -> String {
    match appended {
        Appended::Inserted(id) => id.clone(),
        Appended::Duplicate => panic!("expected a new event"),
    }
}

/// SQLite: acknowledged events wait in the journal until imported into `webhook_events`,
/// under the id the acknowledgement gave them, once each, however often the import runs.
#[tokio::test]
async fn acknowledged_events_are_imported_once_in_order_and_in_slices() {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    if !db.is_sqlite() {
        // PostgreSQL acknowledges into webhook_events directly: nothing to import.
        events::append_batch(&db, &[new_event("evt_pg")])
            .await
            .unwrap();
        let imported = events::import_acknowledged(&db, 10).await.unwrap();
        assert!(imported.events.is_empty() && !imported.more);
        assert_eq!(events::count_all(&db).await.unwrap(), 1);
        return;
    }
    let appended = events::append_batch(
        &db,
        &[new_event("evt_1"), new_event("evt_2"), new_event("evt_3")],
    )
    .await
    .unwrap();
    let ids: Vec<String> = appended.iter().map(inserted_id).collect();
    assert_eq!(events::count_all(&db).await.unwrap(), 0, "not imported yet");
    assert_eq!(events::count_acknowledged(&db).await.unwrap(), 3);

    let first = events::import_acknowledged(&db, 2).await.unwrap();
    assert!(first.more, "a full slice: more may wait");
    let second = events::import_acknowledged(&db, 2).await.unwrap();
    assert!(!second.more);
    let imported: Vec<(String, Option<String>)> =
        first.events.into_iter().chain(second.events).collect();
    assert_eq!(
        imported,
        ids.iter()
            .zip(["cs_evt_1", "cs_evt_2", "cs_evt_3"])
            .map(|(id, s)| (id.clone(), Some(s.to_owned())))
            .collect::<Vec<_>>()
    );
    let again = events::import_acknowledged(&db, 2).await.unwrap();
    assert!(again.events.is_empty() && !again.more, "{again:?}");
    assert_eq!(events::count_all(&db).await.unwrap(), 3);
    let row = events::get(&db, &ids[0]).await.unwrap().expect("imported");
    assert_eq!(
        (row.stripe_event_id.as_str(), row.status.as_str()),
        ("evt_1", events::status::RECEIVED)
    );
    assert_eq!(row.payload, r#"{"id":"evt_1"}"#);
}

/// SQLite: a journal deleted and made again (a new identity) is imported from its first
/// row, and an event `webhook_events` holds already is not stored nor processed twice.
#[tokio::test]
async fn a_new_journal_is_imported_from_its_start_and_known_events_are_skipped() {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let Some(journal) = db.ack_journal() else {
        return; // PostgreSQL has no journal.
    };
    let journal_path = journal.path().to_owned();
    events::append_batch(&db, &[new_event("evt_a"), new_event("evt_b")])
        .await
        .unwrap();
    assert_eq!(
        events::import_acknowledged(&db, 10)
            .await
            .unwrap()
            .events
            .len(),
        2
    );
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = journal_path.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }

    let db = test_db.connect().await;
    // Stripe redelivers evt_b (the new journal does not know it), then a new event comes.
    let appended = events::append_batch(&db, &[new_event("evt_b"), new_event("evt_c")])
        .await
        .unwrap();
    let new_id = inserted_id(&appended[1]);
    let imported = events::import_acknowledged(&db, 10).await.unwrap();
    assert_eq!(
        imported.events,
        vec![(new_id, Some("cs_evt_c".to_owned()))],
        "evt_b was stored already: only evt_c is new"
    );
    assert_eq!(events::count_all(&db).await.unwrap(), 3);
}

#[tokio::test]
async fn foreign_keys_are_enforced() -> Result<(), DbError> {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let t = now();
    let orphan = Commande {
        id: new_id(),
        user_id: "no-such-user".into(),
        titre: "x".into(),
        description: "x".into(),
        statut: "EN_ATTENTE".into(),
        payment_status: "pending".into(),
        stripe_session_id: None,
        stripe_payment_intent: None,
        amount_cents: 1,
        currency: "eur".into(),
        is_guest: false,
        paid_at: None,
        pipeline: None,
        pipeline_attempts: 0,
        pipeline_error: None,
        next_attempt_at: None,
        lease_owner: None,
        lease_expires_at: None,
        created_at: t,
        updated_at: t,
    };
    let res = with_conn!(db, write, |conn| {
        diesel::insert_into(commandes::table)
            .values(&orphan)
            .execute(conn)
            .await
    });
    assert!(res.is_err(), "a commande for a missing user is refused");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_allocations_are_gapless() -> Result<(), DbError> {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let mut ids = Vec::new();
    for i in 0..1000 {
        ids.push(order(&db, &format!("c{i}@example.fr")).await.id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (db, id) = (db.clone(), id.clone());
            tokio::spawn(async move {
                invoices::issue(&db, "FAC", new_invoice(&id), |n, _| Ok(format!("\"{n}\"")))
                    .await
                    .expect("allocation")
            })
        })
        .collect();
    let mut sequences = BTreeSet::new();
    for t in tasks {
        let issued = t.await.unwrap();
        assert!(issued.created);
        assert!(
            sequences.insert(issued.invoice.sequence),
            "duplicate number"
        );
        assert_eq!(
            issued.invoice.document,
            format!("\"{}\"", issued.invoice.number)
        );
    }
    assert_eq!(sequences, (1..=1000).collect::<BTreeSet<i64>>());

    // Asking again for any order returns its invoice, never a new number.
    let again = invoices::issue(&db, "FAC", new_invoice(&ids[17]), |_, _| Ok("{}".into()))
        .await
        .unwrap();
    assert!(!again.created);
    let last = with_conn!(db, |conn| {
        invoice_sequences::table
            .select(invoice_sequences::last_number)
            .first::<i64>(conn)
            .await
    })
    .unwrap();
    assert_eq!(last, 1000);
    Ok(())
}

#[tokio::test]
async fn a_failed_insert_leaves_no_gap() -> Result<(), DbError> {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    let c1 = order(&db, "a@example.fr").await;
    let c2 = order(&db, "b@example.fr").await;
    let err = invoices::issue(&db, "FAC", new_invoice(&c1.id), |_, _| {
        Err(DbError::Corrupt("document could not be built".into()))
    })
    .await;
    assert!(err.is_err());
    let ok = invoices::issue(&db, "FAC", new_invoice(&c2.id), |_, _| Ok("{}".into()))
        .await
        .unwrap();
    assert_eq!(
        ok.invoice.sequence, 1,
        "the failed attempt did not consume a number"
    );
    Ok(())
}

/// SQLite: the journal lets go of rows once imported and old enough, never of a row not yet
/// imported, and numbers the rows after them past the watermark still.
#[tokio::test]
async fn the_journal_prunes_only_imported_rows_and_keeps_numbering_past_them() {
    let test_db = TestDb::new();
    let db = test_db.connect().await;
    if !db.is_sqlite() {
        assert_eq!(
            events::prune_journal(&db, chrono::Duration::zero(), 10)
                .await
                .unwrap(),
            0
        );
        return;
    }
    events::append_batch(&db, &[new_event("evt_old_1"), new_event("evt_old_2")])
        .await
        .unwrap();
    assert_eq!(
        events::prune_journal(&db, chrono::Duration::zero(), 10)
            .await
            .unwrap(),
        0,
        "nothing imported yet: nothing to prune"
    );
    events::import_acknowledged(&db, 10).await.unwrap();
    let waiting = events::append_batch(&db, &[new_event("evt_waiting")])
        .await
        .unwrap();
    assert_eq!(
        events::prune_journal(&db, events::JOURNAL_RETENTION, 10)
            .await
            .unwrap(),
        0,
        "imported rows are kept for the retention period"
    );
    assert_eq!(
        events::prune_journal(&db, chrono::Duration::zero(), 10)
            .await
            .unwrap(),
        2,
        "the two imported rows go"
    );
    assert_eq!(events::count_acknowledged(&db).await.unwrap(), 1);
    assert_eq!(events::count_unimported(&db).await.unwrap(), 1);

    // Every row is imported and pruned: a new one is still numbered past the watermark.
    events::import_acknowledged(&db, 10).await.unwrap();
    events::prune_journal(&db, chrono::Duration::zero(), 10)
        .await
        .unwrap();
    assert_eq!(events::count_acknowledged(&db).await.unwrap(), 0);
    let after = events::append_batch(&db, &[new_event("evt_after_prune")])
        .await
        .unwrap();
    let imported = events::import_acknowledged(&db, 10).await.unwrap();
    assert_eq!(
        imported.events,
        vec![(
            inserted_id(&after[0]),
            Some("cs_evt_after_prune".to_owned())
        )]
    );
    assert!(events::get(&db, &inserted_id(&waiting[0]))
        .await
        .unwrap()
        .is_some());
    assert_eq!(events::count_all(&db).await.unwrap(), 4);
}
