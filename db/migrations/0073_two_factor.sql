-- Optional two-factor login (billing/twofactor.py): one TOTP secret per login, on once confirmed with a
-- code. last_step is the last 30-second step used, so a code cannot be replayed; failures and locked_until
-- throttle wrong codes. Recovery codes are stored only as SHA-256 hashes and each works once.
CREATE TABLE two_factor (
    id {pk},
    user_id INTEGER NOT NULL UNIQUE REFERENCES "user" (id) ON DELETE CASCADE,
    secret VARCHAR(64) NOT NULL,
    enabled_at TIMESTAMP NULL,
    last_step BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    first_failure_at TIMESTAMP NULL,
    locked_until TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE recovery_code (
    id {pk},
    user_id INTEGER NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
    code_hash VARCHAR(64) NOT NULL UNIQUE,
    used_at TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX recovery_code_user_id ON recovery_code (user_id);
-- The ISP can require a second factor for staff logins (staff Settings).
ALTER TABLE isp ADD COLUMN require_staff_2fa BOOLEAN NOT NULL DEFAULT FALSE;
