-- Saved-method preferences, autopay enrolment with its recorded authorization,
-- the autopay charges (one row per invoice, cycle and attempt), the ISP's
-- autopay policy, and adding a method through the processor (setups).
CREATE TABLE autopay_policy (
    id {pk},
    days_before INTEGER NOT NULL DEFAULT 0 CHECK (days_before >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    retry_days INTEGER NOT NULL DEFAULT 3 CHECK (retry_days >= 1),
    upcoming_notice_days INTEGER NOT NULL DEFAULT 3 CHECK (upcoming_notice_days >= 0),
    expiry_notice_days INTEGER NOT NULL DEFAULT 30 CHECK (expiry_notice_days >= 0),
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE default_payment_method (
    id {pk},
    customer_id INTEGER NOT NULL UNIQUE REFERENCES customer (id) ON DELETE CASCADE,
    payment_method_id INTEGER NOT NULL REFERENCES payment_method (id) ON DELETE CASCADE,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE autopay_authorization (
    id {pk},
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE CASCADE,
    payment_id INTEGER REFERENCES payment (id) ON DELETE SET NULL,
    payment_method_id INTEGER REFERENCES payment_method (id) ON DELETE SET NULL,
    source VARCHAR(255) NOT NULL,
    text_version VARCHAR(255) NOT NULL,
    text TEXT NOT NULL,
    accepted_at TIMESTAMP NOT NULL,
    ip VARCHAR(255) NOT NULL DEFAULT '',
    user_agent VARCHAR(512) NOT NULL DEFAULT ''
);
CREATE INDEX autopay_authorization_customer_id ON autopay_authorization (customer_id);
CREATE UNIQUE INDEX autopay_authorization_payment_id ON autopay_authorization (payment_id);
CREATE TABLE autopay_enrolment (
    id {pk},
    customer_id INTEGER NOT NULL UNIQUE REFERENCES customer (id) ON DELETE CASCADE,
    payment_method_id INTEGER REFERENCES payment_method (id) ON DELETE SET NULL,
    authorization_id INTEGER REFERENCES autopay_authorization (id) ON DELETE SET NULL,
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    enrolled_at TIMESTAMP,
    disabled_at TIMESTAMP,
    disabled_reason VARCHAR(255) NOT NULL DEFAULT '',
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX autopay_enrolment_enabled ON autopay_enrolment (enabled);
CREATE TABLE autopay_charge (
    id {pk},
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
    invoice_id INTEGER NOT NULL REFERENCES invoice (id) ON DELETE RESTRICT,
    cycle VARCHAR(255) NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    payment_method_id INTEGER REFERENCES payment_method (id) ON DELETE SET NULL,
    payment_id INTEGER UNIQUE REFERENCES payment (id) ON DELETE SET NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    currency VARCHAR(3) NOT NULL DEFAULT 'USD',
    status VARCHAR(255) NOT NULL,
    reason_code VARCHAR(255) NOT NULL DEFAULT '',
    reason_message VARCHAR(255) NOT NULL DEFAULT '',
    run_on DATE NOT NULL,
    retry_on DATE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX autopay_charge_invoice_id_cycle_attempt ON autopay_charge (invoice_id, cycle, attempt);
CREATE INDEX autopay_charge_customer_id_status ON autopay_charge (customer_id, status);
CREATE INDEX autopay_charge_status_updated_at ON autopay_charge (status, updated_at);
CREATE TABLE method_setup (
    id {pk},
    ref VARCHAR(255) NOT NULL UNIQUE,
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE CASCADE,
    processor VARCHAR(255) NOT NULL,
    processor_ref VARCHAR(255) UNIQUE,
    method_type VARCHAR(255) NOT NULL,
    status VARCHAR(255) NOT NULL,
    payment_method_id INTEGER REFERENCES payment_method (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX method_setup_customer_id ON method_setup (customer_id);
