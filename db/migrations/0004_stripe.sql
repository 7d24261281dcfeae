-- Stripe as the live processor: the Stripe Customer of each portal customer, the ACH
-- mandate acceptance recorded with a payment, and reversals of money already received
-- (refunds, ACH returns, disputes), each UNIQUE by the processor's id so it applies once.
CREATE TABLE stripe_customer (
    id {pk},
    customer_id INTEGER NOT NULL UNIQUE REFERENCES customer (id) ON DELETE RESTRICT,
    stripe_id VARCHAR(255) NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE payment_mandate (
    id {pk},
    payment_id INTEGER NOT NULL UNIQUE REFERENCES payment (id) ON DELETE RESTRICT,
    text TEXT NOT NULL,
    accepted_at TIMESTAMP NOT NULL,
    ip VARCHAR(255) NOT NULL DEFAULT '',
    user_agent VARCHAR(512) NOT NULL DEFAULT ''
);
CREATE TABLE payment_reversal (
    id {pk},
    payment_id INTEGER NOT NULL REFERENCES payment (id) ON DELETE RESTRICT,
    kind VARCHAR(255) NOT NULL,
    amount_cents BIGINT NOT NULL,
    processor_ref VARCHAR(255) NOT NULL UNIQUE,
    reason VARCHAR(255) NOT NULL DEFAULT '',
    actor VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX payment_reversal_payment_id ON payment_reversal (payment_id);
