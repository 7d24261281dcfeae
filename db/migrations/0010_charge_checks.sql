-- Money is checked when it moves (billing.payments.check_fits).
-- owed_cents: what the customer owed when they chose the amount (NULL for older rows: no prepayment was chosen).
-- charging_at: when the portal asked (or was about to ask) the processor to charge; from then on the
--   attempt may have taken money, so it counts as pending until the processor's answer is recorded.
ALTER TABLE payment ADD COLUMN owed_cents BIGINT NULL;
ALTER TABLE payment ADD COLUMN charging_at TIMESTAMP NULL;
CREATE INDEX payment_customer_status ON payment (customer_id, status);
