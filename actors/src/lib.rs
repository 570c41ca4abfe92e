//! facture-actors: the actor tree that turns an acknowledged Stripe event into a mailed
//! invoice (WebhookReceiver, OrderRegistry/OrderActor, InvoiceRenderer pool,
//! StorageWriter, Mailer, NotificationBus, under supervision).
