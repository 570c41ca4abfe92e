-- How far the SQLite acknowledgement journal (`<database>.acks`, core/src/db/ack_journal.rs)
-- has been copied into webhook_events: the last `seq` copied, per journal identity. Advanced in
-- the same transaction as the copy. Unused on PostgreSQL, whose receiver writes
-- webhook_events directly.
CREATE TABLE ack_imports (
    journal_id TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL
);
