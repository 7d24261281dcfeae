-- Invoices staff create, edit, void and adjust on the staff pages (issue 15).
-- A void keeps its reason and time. An adjustment (a credit note) is a new line with a negative amount,
-- dated, with who added it and the key of the form that added it (UNIQUE: a double submit adds it once);
-- the lines of an invoice are never rewritten once money is applied to it.
ALTER TABLE invoice ADD COLUMN void_reason VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE invoice ADD COLUMN voided_at TIMESTAMP;
ALTER TABLE invoice_line ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'charge';
ALTER TABLE invoice_line ADD COLUMN created_at TIMESTAMP;
ALTER TABLE invoice_line ADD COLUMN added_by VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE invoice_line ADD COLUMN request_key VARCHAR(64);
CREATE UNIQUE INDEX invoice_line_request_key ON invoice_line (request_key);
