-- The staff's pending-ACH list and status/method filters: WHERE status = ? [AND method_type = ?] ORDER BY created_at.
-- Without it, a filter that matches few payments walks the whole (created_at, id) index looking for them.
CREATE INDEX payment_status_method_type_created_at ON payment (status, method_type, created_at);
