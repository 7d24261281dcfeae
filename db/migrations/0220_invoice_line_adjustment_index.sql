-- A statement's adjustments (credit notes) were found by walking every line of every one of the customer's
-- invoices. This index holds the adjustment lines only, so the statement reaches them without reading the
-- charge lines: its cost follows the credit notes, not how long the customer has been billed (bench/growth.py).
CREATE INDEX invoice_line_adjustment ON invoice_line (invoice_id) WHERE kind = 'adjustment';
