-- Every dispute the processor reports about a payment, at its latest status: inquiries (warning_*) that
-- move no money and are shown to staff as a flag, chargebacks (needs_response, under_review) that take the
-- money back, and how each ended (warning_closed, won, prevented, lost). The money itself is in
-- payment_reversal; this row is what staff read and what the next event is compared with.
CREATE TABLE payment_dispute (
    id {pk},
    payment_id INTEGER NOT NULL REFERENCES payment (id) ON DELETE RESTRICT,
    processor_ref VARCHAR(255) NOT NULL UNIQUE,
    status VARCHAR(32) NOT NULL,
    amount_cents BIGINT NOT NULL,
    reason VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX payment_dispute_payment_id ON payment_dispute (payment_id);
