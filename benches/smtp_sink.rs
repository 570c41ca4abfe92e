//! The mail server behind `benches/run.sh`: the test suite's SMTP sink
//! (`facture_core::testkit::smtp`) on a given port, keeping no message, only their number.
//! A Python sink used to stand here; it took a quarter of a core at 2,000 mails/s on the
//! same two cores as the server it measured.
//!
//! `smtp_sink <port> <count-file>`: serves until SIGINT or SIGTERM, then writes the number
//! of accepted mails to `<count-file>`. run.sh builds it with
//! `cargo build --release --bench smtp_sink`.

use anyhow::Context;
use facture_core::testkit::smtp::SmtpSink;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(count_file)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: smtp_sink <port> <count-file>");
    };
    let port: u16 = port.parse().context("the port")?;
    actix_rt::System::new().block_on(async move {
        let sink = SmtpSink::start_discarding_on(port)
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        let mut terminate =
            actix_rt::signal::unix::signal(actix_rt::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = actix_rt::signal::ctrl_c() => {}
        }
        std::fs::write(&count_file, sink.accepted().to_string())
            .with_context(|| format!("writing {count_file}"))
    })
}
