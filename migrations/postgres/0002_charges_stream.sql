-- Charges and a commit-safe cursor for the CDR and charge streams.
-- The SQLite twin (../sqlite/0002_charges_stream.sql) adds the same
-- column and indexes; the txid columns exist only here (see below).

-- A charge keeps the service of its session, so that filters and reports
-- by service need no join with sessions.
ALTER TABLE charges ADD COLUMN service_id TEXT;

-- The transaction that wrote each row. seq comes from a sequence, taken at
-- insert, but transactions commit in any order: a reader could see seq 11
-- before seq 10 commits, move its cursor past 10 and never see it. Lists
-- therefore return only rows written by transactions older than every
-- transaction still in flight (txid < xmin of the reader's snapshot: those
-- rows are final), in (txid, seq) order, and the cursor is that pair. Every
-- row written later has txid >= that xmin, so it sorts after any cursor
-- already handed out. Existing rows all get this migration's txid and keep
-- their seq order.
ALTER TABLE cdrs ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE charges ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX cdrs_stream_idx ON cdrs (txid, seq);
CREATE INDEX charges_stream_idx ON charges (txid, seq);

CREATE INDEX cdrs_app_server_idx ON cdrs (app_server_id);
CREATE INDEX charges_client_idx ON charges (client_id);
CREATE INDEX charges_service_idx ON charges (service_id);
CREATE INDEX charges_app_server_idx ON charges (app_server_id);
