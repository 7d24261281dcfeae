-- The staff payments list and its CSV export page through payments newest first: (created_at, id) is
-- their sort key, so an index on it turns a sort of every payment into a walk of one page's rows.
CREATE INDEX payment_created_at_id ON payment (created_at, id);
