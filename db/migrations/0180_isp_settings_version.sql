-- A counter bumped by every write to the ISP row (db/models.py Isp.update/save). Each worker keeps the row in
-- memory and re-reads it only when this number changed, so staff changes reach every worker and host at once.
ALTER TABLE isp ADD COLUMN settings_version INTEGER NOT NULL DEFAULT 0;
