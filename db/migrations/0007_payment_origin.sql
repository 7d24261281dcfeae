-- Where a payment was started: the portal, an invoice's pay link, or the autopay run.
-- Pay-by-link reaches only payments started through its link; until now that was read from the audit log.
ALTER TABLE payment ADD COLUMN origin VARCHAR(255) NOT NULL DEFAULT 'portal';
UPDATE payment SET origin = 'paylink' WHERE ref IN (
    SELECT entity_id FROM audit_log WHERE entity = 'payment' AND action = 'payment.created' AND SUBSTR(actor, 1, 8) = 'paylink:');
UPDATE payment SET origin = 'autopay' WHERE ref IN (
    SELECT entity_id FROM audit_log WHERE entity = 'payment' AND action = 'payment.created' AND actor = 'autopay');
