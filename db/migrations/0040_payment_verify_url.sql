-- A bank debit whose account Stripe verifies with two small deposits waits in its own state
-- (awaiting_verification) with the link to Stripe's page where the customer enters them.
ALTER TABLE payment ADD COLUMN verify_url TEXT NOT NULL DEFAULT '';
