//! Group commit: appending one batch of 100 verified events in ONE durable transaction
//! (`facture_core::events::append_batch`, what the WebhookReceiver does under load).
//! SQLite by default (a temporary file, WAL, synchronous=FULL on this commit);
//! PostgreSQL when FACTURE_TEST_DATABASE_URL points at a server.
//!
//! `cargo bench --bench group_commit -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use facture::commands::simulate_payment::completed_event;
use facture_core::events::{append_batch, Appended, NewEvent};
use facture_core::testkit::db::TestDb;

const BATCH: usize = 100;

fn batch() -> Vec<NewEvent> {
    (0..BATCH)
        .map(|_| {
            let id = format!("evt_bench_{}", facture_core::random_hex(12));
            let session = format!("cs_test_{}", facture_core::random_hex(16));
            let body = completed_event(&id, &session, 12_000, 1_800_000_000);
            NewEvent {
                stripe_event_id: id,
                event_type: "checkout.session.completed".into(),
                payload: String::from_utf8(body).expect("JSON is UTF-8"),
                session_id: Some(session),
            }
        })
        .collect()
}

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let test_db = TestDb::new();
    let engine = if test_db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let db = rt.block_on(test_db.connect());
    let mut group = c.benchmark_group(format!("group_commit_{engine}"));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("append_batch_100", |b| {
        b.iter_batched(
            batch,
            |events| {
                let out = rt
                    .block_on(append_batch(&db, black_box(&events)))
                    .expect("batch commits");
                debug_assert!(out.iter().all(|a| matches!(a, Appended::Inserted(_))));
                out
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    drop(db);
    drop(test_db);
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
