-- TOTP secrets sealed at rest (billing/sealed.py: AES-GCM under a key derived from SECRET_KEY). The sealed
-- value is longer than the old VARCHAR(64) column allows, so it gets its own column; the old one keeps a
-- legacy plain value until db-upgrade (or the login's next right code) seals it, and is then ''.
ALTER TABLE two_factor ADD COLUMN sealed_secret VARCHAR(255) NOT NULL DEFAULT '';
