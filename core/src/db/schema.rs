//! Diesel's view of `migrations/`. Written by hand to match the SQL (both engines);
//! `core/tests/database.rs` round-trips every table to keep the two in step.

diesel::table! {
    users (id) {
        id -> Text,
        prenom -> Text,
        nom -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        role -> Text,
        is_active -> Bool,
        adresse -> Nullable<Text>,
        telephone -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    commandes (id) {
        id -> Text,
        user_id -> Text,
        titre -> Text,
        description -> Text,
        statut -> Text,
        payment_status -> Text,
        stripe_session_id -> Nullable<Text>,
        stripe_payment_intent -> Nullable<Text>,
        amount_cents -> BigInt,
        currency -> Text,
        is_guest -> Bool,
        paid_at -> Nullable<Timestamp>,
        pipeline -> Nullable<Text>,
        pipeline_attempts -> Integer,
        pipeline_error -> Nullable<Text>,
        next_attempt_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    pending_commandes (id) {
        id -> Text,
        prenom -> Text,
        nom -> Text,
        email -> Text,
        telephone -> Nullable<Text>,
        adresse -> Nullable<Text>,
        titre -> Text,
        description -> Text,
        amount_cents -> BigInt,
        nombre_pages -> Nullable<Integer>,
        stripe_session_id -> Nullable<Text>,
        activation_token -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamp>,
        status -> Text,
        is_processed -> Bool,
        user_id -> Nullable<Text>,
        commande_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    files (id) {
        id -> Text,
        pending_commande_id -> Nullable<Text>,
        commande_id -> Nullable<Text>,
        original_name -> Text,
        stored_path -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    invoice_sequences (year) {
        year -> Integer,
        last_number -> BigInt,
    }
}

diesel::table! {
    invoices (id) {
        id -> Text,
        commande_id -> Text,
        number -> Text,
        year -> Integer,
        sequence -> BigInt,
        amount_cents -> BigInt,
        tax_cents -> BigInt,
        tax_rate_bp -> Integer,
        pdf_path -> Nullable<Text>,
        pdf_sha256 -> Nullable<Text>,
        pdf_size -> Nullable<BigInt>,
        status -> Text,
        document -> Text,
        issued_at -> Timestamp,
        due_at -> Timestamp,
        paid_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        stripe_event_id -> Text,
        event_type -> Text,
        payload -> Text,
        received_at -> Timestamp,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        processed_at -> Nullable<Timestamp>,
        session_id -> Nullable<Text>,
        commande_id -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    order_steps (id) {
        id -> Text,
        commande_id -> Text,
        step -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        kind -> Text,
        title -> Text,
        message -> Text,
        priority -> Text,
        data -> Text,
        is_read -> Bool,
        dedupe_key -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    email_deliveries (id) {
        id -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        invoice_id -> Nullable<Text>,
        commande_id -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        dedupe_key -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    ack_imports (journal_id) {
        journal_id -> Text,
        seq -> BigInt,
    }
}

diesel::joinable!(commandes -> users (user_id));
diesel::joinable!(invoices -> commandes (commande_id));
diesel::joinable!(order_steps -> commandes (commande_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    commandes,
    pending_commandes,
    files,
    invoice_sequences,
    invoices,
    webhook_events,
    order_steps,
    notifications,
    email_deliveries,
    ack_imports,
);
