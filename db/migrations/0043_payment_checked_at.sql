-- When the portal last asked the processor about a payment on a page's behalf. Pages poll the portal's own
-- row; the processor is asked at most once per interval for each payment, however many pages are open, and
-- less often as the payment ages (its webhooks do the work).
ALTER TABLE payment ADD COLUMN checked_at TIMESTAMP;
