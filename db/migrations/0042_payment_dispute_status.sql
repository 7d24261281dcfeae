-- The latest status of a dispute or inquiry about a payment, as the processor reports it (Stripe's dispute
-- statuses): an inquiry flags the payment without moving money, so the flag needs a place of its own.
ALTER TABLE payment ADD COLUMN dispute_status VARCHAR(255) NOT NULL DEFAULT '';
