//! The crash campaign: a real facture process, a burst of payments, SIGKILL at random
//! moments, restarts. At the end nothing acknowledged is lost, every paid order has
//! exactly one invoice, numbers are gapless, every PDF matches its SHA-256 and every
//! customer received their invoice mail at least once.
//!
//! CI runs a small burst; `FACTURE_HEAVY=1` runs the heavy variant (2,000 payments).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use facture_core::testkit::smtp::SmtpSink;

use crate::process::{heavy, wait_finished, Rig, Rng};

#[actix_web::test]
async fn kill_9_during_a_burst_loses_nothing_and_invoices_exactly_once() {
    let heavy = heavy();
    let (n, kills) = if heavy { (2_000, 8) } else { (150, 5) };
    let mut rng = Rng::from_env();
    let seed = rng.0;
    let started = Instant::now();

    let rig = Rig::new(n, "crash").await;
    let made = &rig.made;
    let smtp = SmtpSink::start().await;
    let mut facture = rig.facture(&smtp.url());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    facture.start_ready(&client).await;

    // Every payment is delivered twice (Stripe redelivers), in a shuffled order.
    let mut deliveries: Vec<(&str, &[u8])> = made
        .iter()
        .flat_map(|o| [(o.event_id.as_str(), o.event.as_slice()); 2])
        .collect();
    for i in (1..deliveries.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        deliveries.swap(i, j);
    }

    // Deliver like Stripe: anything not answered 2xx is retried later.
    let mut acknowledged: HashSet<&str> = HashSet::new();
    let mut queue = deliveries;
    let mut kills_done = 0;
    // Kill points spread over the burst, each at a random offset.
    let total = queue.len();
    let mut kill_points: Vec<usize> = (0..kills)
        .map(|k| (total * k / kills) + rng.below((total / kills) as u64) as usize)
        .collect();
    kill_points.sort_unstable();
    let mut sent = 0usize;
    let mut refused = 0usize;
    while !queue.is_empty() {
        let take = queue.len().min(16);
        sent += take;
        let batch: Vec<_> = queue.drain(..take).collect();
        let bodies: Vec<&[u8]> = batch.iter().map(|(_, body)| *body).collect();
        let answers = facture.deliver_all(&client, &bodies, 16).await;
        for ((id, body), answer) in batch.into_iter().zip(answers) {
            match answer {
                Ok(status) if (200..300).contains(&status) => {
                    acknowledged.insert(id);
                }
                _ => {
                    refused += 1;
                    queue.push((id, body));
                }
            }
        }
        if kills_done < kills && sent >= kill_points[kills_done] {
            facture.kill();
            kills_done += 1;
            facture.start_ready(&client).await;
        }
    }
    // Kill once more right after the last acknowledgement, then let a fresh process finish.
    facture.kill();
    facture.start_ready(&client).await;
    let acked_at = Instant::now();

    let context = format!("seed {seed}");
    let timeout = Duration::from_secs(if heavy { 600 } else { 120 });
    wait_finished(&rig.db, timeout, &context).await;
    let recovered_in = acked_at.elapsed();

    // Every acknowledged event was processed; each order paid once, invoiced once, mailed.
    assert_eq!(
        acknowledged.len(),
        n,
        "every payment was eventually acknowledged"
    );
    let found = rig.audit(&smtp, &context).await;
    println!(
        "crash campaign (seed {seed}): {n} payments × 2 deliveries, {kills_done}+1 SIGKILLs, \
         {refused} deliveries refused while down and retried, lost 0, duplicate invoices 0, \
         {}, recovered {:.1}s after the last ack, total {:.1}s",
        found,
        recovered_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
