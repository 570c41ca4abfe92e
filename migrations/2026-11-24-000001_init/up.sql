-- One schema for SQLite and PostgreSQL: text ids (UUIDs), BIGINT cents, TIMESTAMP (UTC), BOOLEAN.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    prenom TEXT NOT NULL,
    nom TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    role TEXT NOT NULL DEFAULT 'USER',
    is_active BOOLEAN NOT NULL DEFAULT FALSE,
    adresse TEXT,
    telephone TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE commandes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    titre TEXT NOT NULL,
    description TEXT NOT NULL,
    statut TEXT NOT NULL,
    payment_status TEXT NOT NULL,
    stripe_session_id TEXT UNIQUE,
    stripe_payment_intent TEXT,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL DEFAULT 'eur',
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    paid_at TIMESTAMP,
    -- The invoice pipeline: NULL until paid, then a step name until 'done'.
    pipeline TEXT,
    pipeline_attempts INTEGER NOT NULL DEFAULT 0,
    pipeline_error TEXT,
    next_attempt_at TIMESTAMP,
    lease_owner TEXT,
    lease_expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX commandes_user_idx ON commandes (user_id);
CREATE INDEX commandes_pipeline_idx ON commandes (pipeline);

CREATE TABLE pending_commandes (
    id TEXT PRIMARY KEY NOT NULL,
    prenom TEXT NOT NULL,
    nom TEXT NOT NULL,
    email TEXT NOT NULL,
    telephone TEXT,
    adresse TEXT,
    titre TEXT NOT NULL,
    description TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    nombre_pages INTEGER,
    stripe_session_id TEXT UNIQUE,
    activation_token TEXT UNIQUE,
    token_expires_at TIMESTAMP,
    status TEXT NOT NULL DEFAULT 'open',
    is_processed BOOLEAN NOT NULL DEFAULT FALSE,
    user_id TEXT REFERENCES users (id),
    commande_id TEXT REFERENCES commandes (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE files (
    id TEXT PRIMARY KEY NOT NULL,
    pending_commande_id TEXT REFERENCES pending_commandes (id),
    commande_id TEXT REFERENCES commandes (id),
    original_name TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE invoice_sequences (
    year INTEGER PRIMARY KEY NOT NULL,
    last_number BIGINT NOT NULL
);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY NOT NULL,
    commande_id TEXT NOT NULL UNIQUE REFERENCES commandes (id),
    number TEXT NOT NULL UNIQUE,
    year INTEGER NOT NULL,
    sequence BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    tax_cents BIGINT NOT NULL,
    tax_rate_bp INTEGER NOT NULL,
    pdf_path TEXT,
    pdf_sha256 TEXT,
    pdf_size BIGINT,
    status TEXT NOT NULL,
    -- The exact data printed, so a regenerated PDF shows the same thing.
    document TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    paid_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (year, sequence)
);
CREATE INDEX invoices_status_idx ON invoices (status);

CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY NOT NULL,
    stripe_event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    -- received | processed | ignored | orphan | failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    processed_at TIMESTAMP,
    session_id TEXT,
    commande_id TEXT,
    lease_owner TEXT,
    lease_expires_at TIMESTAMP
);
CREATE INDEX webhook_events_status_idx ON webhook_events (status);
CREATE INDEX webhook_events_session_idx ON webhook_events (session_id);

CREATE TABLE order_steps (
    id TEXT PRIMARY KEY NOT NULL,
    commande_id TEXT NOT NULL REFERENCES commandes (id),
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    UNIQUE (commande_id, step)
);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    priority TEXT NOT NULL,
    data TEXT NOT NULL,
    is_read BOOLEAN NOT NULL DEFAULT FALSE,
    dedupe_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX notifications_created_idx ON notifications (created_at);

CREATE TABLE email_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    invoice_id TEXT,
    commande_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dedupe_key TEXT UNIQUE,
    sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX email_deliveries_status_idx ON email_deliveries (status);
