-- Charges and the CDR and charge streams. The PostgreSQL twin
-- (../postgres/0002_charges_stream.sql) also records the writing
-- transaction of each row for its cursor; SQLite needs no such column:
-- it has one writer at a time, so seq (AUTOINCREMENT, never reused) is
-- assigned in commit order and a seq cursor can never skip a row.

-- A charge keeps the service of its session, so that filters and reports
-- by service need no join with sessions.
ALTER TABLE charges ADD COLUMN service_id TEXT;

CREATE INDEX cdrs_app_server_idx ON cdrs (app_server_id);
CREATE INDEX charges_client_idx ON charges (client_id);
CREATE INDEX charges_service_idx ON charges (service_id);
CREATE INDEX charges_app_server_idx ON charges (app_server_id);
