-- The ISP, its customers and their logins, invoices, and the audit trail.
CREATE TABLE isp (
    id {pk},
    name VARCHAR(255) NOT NULL,
    currency VARCHAR(3) NOT NULL DEFAULT 'USD',
    support_phone VARCHAR(255) NOT NULL DEFAULT '',
    support_email VARCHAR(255) NOT NULL DEFAULT '',
    help_url VARCHAR(255) NOT NULL DEFAULT '',
    chat_url VARCHAR(255) NOT NULL DEFAULT '',
    min_payment_cents BIGINT NOT NULL DEFAULT 100,
    max_prepay_cents BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE customer (
    id {pk},
    account_number VARCHAR(255) NOT NULL UNIQUE,
    name VARCHAR(255) NOT NULL,
    email VARCHAR(255) NOT NULL DEFAULT '',
    phone VARCHAR(255) NOT NULL DEFAULT '',
    street VARCHAR(255) NOT NULL DEFAULT '',
    city VARCHAR(255) NOT NULL DEFAULT '',
    state VARCHAR(255) NOT NULL DEFAULT '',
    zip VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE "user" (
    id {pk},
    email VARCHAR(255) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    role VARCHAR(255) NOT NULL DEFAULT 'customer',
    customer_id INTEGER UNIQUE REFERENCES customer (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE login_session (
    id {pk},
    token VARCHAR(255) NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
);
CREATE INDEX login_session_user_id ON login_session (user_id);
CREATE TABLE invoice (
    id {pk},
    customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
    number VARCHAR(255) NOT NULL UNIQUE,
    issue_date DATE NOT NULL,
    due_date DATE NOT NULL,
    period_start DATE,
    period_end DATE,
    total_cents BIGINT NOT NULL CHECK (total_cents >= 0),
    currency VARCHAR(3) NOT NULL DEFAULT 'USD',
    void BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX invoice_customer_id_due_date_number ON invoice (customer_id, due_date, number);
CREATE TABLE invoice_line (
    id {pk},
    invoice_id INTEGER NOT NULL REFERENCES invoice (id) ON DELETE CASCADE,
    position INTEGER NOT NULL DEFAULT 0,
    description VARCHAR(255) NOT NULL,
    quantity INTEGER NOT NULL DEFAULT 1,
    unit_cents BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL
);
CREATE INDEX invoice_line_invoice_id ON invoice_line (invoice_id);
CREATE TABLE audit_log (
    id {pk},
    at TIMESTAMP NOT NULL,
    actor VARCHAR(255) NOT NULL,
    action VARCHAR(255) NOT NULL,
    entity VARCHAR(255) NOT NULL,
    entity_id VARCHAR(255) NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_entity_entity_id ON audit_log (entity, entity_id);
