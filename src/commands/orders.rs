//! `facture orders create`: a customer order waiting for payment, for trying the flow
//! without Stripe (and for the load generator).

use facture_core::config::Settings;
use facture_core::orders::{create_order, NewOrder};

use crate::cli::CreateOrder;

pub async fn create(settings: &Settings, args: CreateOrder) -> anyhow::Result<()> {
    if !args.email.contains('@') {
        anyhow::bail!("--email: expected an email address, got `{}`", args.email);
    }
    let db = super::open_db(settings).await?;
    let session = args
        .session
        .unwrap_or_else(|| format!("cs_test_{}", facture_core::random_hex(16)));
    let order = create_order(
        &db,
        &NewOrder {
            email: args.email,
            prenom: args.first_name,
            nom: args.last_name,
            titre: args.title,
            description: args.description,
            amount_cents: args.amount_cents,
            session_id: session.clone(),
        },
    )
    .await?;
    println!("commande {}\nsession {session}", order.id);
    Ok(())
}
