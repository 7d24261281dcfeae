-- Outgoing email, written in the same transaction as the event that causes it.
CREATE TABLE outbox (
    id {pk},
    kind VARCHAR(255) NOT NULL DEFAULT '',
    dedupe_key VARCHAR(255) UNIQUE,
    to_addr VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR(255) NOT NULL DEFAULT '',
    sent_at TIMESTAMP
);
CREATE INDEX outbox_sent_at_next_attempt_at ON outbox (sent_at, next_attempt_at);
