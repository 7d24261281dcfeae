-- The ISP side: portal settings, billing-system API tokens, and invite / sign-up / reset tokens.
ALTER TABLE isp ADD COLUMN logo_type VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE isp ADD COLUMN logo_data TEXT NOT NULL DEFAULT '';
ALTER TABLE isp ADD COLUMN accent_color VARCHAR(7) NOT NULL DEFAULT '';
ALTER TABLE isp ADD COLUMN show_invoices BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE isp ADD COLUMN show_payments BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE isp ADD COLUMN show_statement BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE isp ADD COLUMN accept_card BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE isp ADD COLUMN accept_ach BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE isp ADD COLUMN max_payment_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE isp ADD COLUMN allow_prepay BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE isp ADD COLUMN invite_subject VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE isp ADD COLUMN invite_text TEXT NOT NULL DEFAULT '';
CREATE TABLE api_token (
    id {pk},
    name VARCHAR(255) NOT NULL,
    prefix VARCHAR(32) NOT NULL,
    token_hash VARCHAR(255) NOT NULL UNIQUE,
    created_by VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE TABLE account_token (
    id {pk},
    kind VARCHAR(16) NOT NULL,
    token_hash VARCHAR(255) NOT NULL UNIQUE,
    customer_id INTEGER REFERENCES customer (id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES "user" (id) ON DELETE CASCADE,
    email VARCHAR(255) NOT NULL,
    created_by VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX account_token_customer_id_kind ON account_token (customer_id, kind);
CREATE INDEX account_token_user_id ON account_token (user_id);
CREATE INDEX payment_updated_at_id ON payment (updated_at, id);
CREATE INDEX customer_name ON customer (name);
CREATE INDEX customer_email ON customer (email);
