-- Refunds asked for on the staff pages (issue 15). A request is written, UNIQUE by the key of the confirmed
-- form, before the processor is asked, so a double click or a retry refunds once however the processor
-- treats idempotency; its cents count as taken while it is in flight, so two requests cannot both pass.
CREATE TABLE refund_request (
    id {pk},
    request_key VARCHAR(64) NOT NULL UNIQUE,
    payment_id INTEGER NOT NULL REFERENCES payment (id) ON DELETE RESTRICT,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    reason VARCHAR(255) NOT NULL,
    actor VARCHAR(255) NOT NULL,
    status VARCHAR(16) NOT NULL,
    processor_ref VARCHAR(255) UNIQUE,
    error VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX refund_request_payment_id ON refund_request (payment_id);
