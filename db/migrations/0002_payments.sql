-- Payments, their allocations to invoices, account credit, saved methods,
-- webhook de-duplication, and the built-in sandbox processor's tables.
CREATE TABLE payment_method (
    id {pk},
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE CASCADE,
    processor VARCHAR(255) NOT NULL,
    processor_ref VARCHAR(255) NOT NULL UNIQUE,
    method_type VARCHAR(255) NOT NULL,
    brand VARCHAR(255) NOT NULL DEFAULT '',
    last4 VARCHAR(4) NOT NULL,
    exp_month INTEGER,
    exp_year INTEGER,
    created_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP
);
CREATE INDEX payment_method_customer_id ON payment_method (customer_id);
CREATE TABLE payment (
    id {pk},
    ref VARCHAR(255) NOT NULL UNIQUE,
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
    idempotency_key VARCHAR(255) NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    currency VARCHAR(3) NOT NULL DEFAULT 'USD',
    method_type VARCHAR(255) NOT NULL,
    status VARCHAR(255) NOT NULL,
    target_invoice_id INTEGER REFERENCES invoice (id) ON DELETE RESTRICT,
    processor VARCHAR(255) NOT NULL,
    processor_ref VARCHAR(255) UNIQUE,
    payment_method_id INTEGER REFERENCES payment_method (id) ON DELETE SET NULL,
    method_brand VARCHAR(255) NOT NULL DEFAULT '',
    method_last4 VARCHAR(255) NOT NULL DEFAULT '',
    billing_name VARCHAR(255) NOT NULL DEFAULT '',
    billing_street VARCHAR(255) NOT NULL DEFAULT '',
    billing_city VARCHAR(255) NOT NULL DEFAULT '',
    billing_state VARCHAR(255) NOT NULL DEFAULT '',
    billing_zip VARCHAR(255) NOT NULL DEFAULT '',
    billing_email VARCHAR(255) NOT NULL DEFAULT '',
    billing_phone VARCHAR(255) NOT NULL DEFAULT '',
    save_for_autopay BOOLEAN NOT NULL DEFAULT FALSE,
    failure_code VARCHAR(255) NOT NULL DEFAULT '',
    failure_message VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    settled_at TIMESTAMP
);
CREATE INDEX payment_customer_id_created_at ON payment (customer_id, created_at);
CREATE INDEX payment_status_updated_at ON payment (status, updated_at);
CREATE TABLE allocation (
    id {pk},
    payment_id INTEGER NOT NULL REFERENCES payment (id) ON DELETE RESTRICT,
    invoice_id INTEGER NOT NULL REFERENCES invoice (id) ON DELETE RESTRICT,
    amount_cents BIGINT NOT NULL,
    reverses_id INTEGER UNIQUE REFERENCES allocation (id) ON DELETE RESTRICT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX allocation_invoice_id ON allocation (invoice_id);
CREATE INDEX allocation_payment_id ON allocation (payment_id);
CREATE TABLE credit_entry (
    id {pk},
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
    payment_id INTEGER NOT NULL REFERENCES payment (id) ON DELETE RESTRICT,
    invoice_id INTEGER REFERENCES invoice (id) ON DELETE RESTRICT,
    amount_cents BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX credit_entry_customer_id ON credit_entry (customer_id);
CREATE TABLE payment_invoice (
    id {pk},
    payment_id INTEGER NOT NULL REFERENCES payment (id) ON DELETE CASCADE,
    invoice_id INTEGER NOT NULL REFERENCES invoice (id) ON DELETE RESTRICT,
    amount_cents BIGINT NOT NULL
);
CREATE UNIQUE INDEX payment_invoice_payment_id_invoice_id ON payment_invoice (payment_id, invoice_id);
CREATE INDEX payment_invoice_invoice_id ON payment_invoice (invoice_id);
CREATE TABLE webhook_event (
    id {pk},
    processor VARCHAR(255) NOT NULL,
    event_id VARCHAR(255) NOT NULL,
    event_type VARCHAR(255) NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhook_event_processor_event_id ON webhook_event (processor, event_id);
CREATE TABLE sandbox_intent (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    client_secret VARCHAR(255) NOT NULL UNIQUE,
    idempotency_key VARCHAR(255) NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    method_type VARCHAR(255) NOT NULL,
    status VARCHAR(255) NOT NULL,
    brand VARCHAR(255) NOT NULL DEFAULT '',
    last4 VARCHAR(255) NOT NULL DEFAULT '',
    exp_month INTEGER,
    exp_year INTEGER,
    method_token VARCHAR(255) NOT NULL DEFAULT '',
    failure_code VARCHAR(255) NOT NULL DEFAULT '',
    failure_message VARCHAR(255) NOT NULL DEFAULT '',
    settle_after TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX sandbox_intent_status_settle_after ON sandbox_intent (status, settle_after);
CREATE TABLE sandbox_method (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    method_type VARCHAR(255) NOT NULL,
    brand VARCHAR(255) NOT NULL,
    last4 VARCHAR(255) NOT NULL,
    exp_month INTEGER,
    exp_year INTEGER,
    behaviour VARCHAR(255) NOT NULL DEFAULT 'ok',
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE sandbox_event (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    event_type VARCHAR(255) NOT NULL,
    intent_id VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0
);
