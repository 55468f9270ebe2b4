-- +goose NO TRANSACTION
-- +goose Up

-- Indexes for names, search and exports (issue 22), each built
-- without stopping writes, and each dropped first so that a build a failure
-- left INVALID is built again.
SET lock_timeout = '5s';

-- ?q= on codes and locks: case-insensitive partial matches (ILIKE '%x%')
-- through trigrams. Partial: a code without a name (every code as ingest
-- inserts it) adds no entry, so ingest pays nothing for it; a name is
-- written once, by the names job.
DROP INDEX CONCURRENTLY IF EXISTS access_codes_name_trgm_idx;
CREATE INDEX CONCURRENTLY access_codes_name_trgm_idx ON access_codes
    USING gin (access_code_name gin_trgm_ops) WHERE access_code_name IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS devices_name_trgm_idx;
CREATE INDEX CONCURRENTLY devices_name_trgm_idx ON devices
    USING gin (device_name gin_trgm_ops) WHERE device_name IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS devices_location_trgm_idx;
CREATE INDEX CONCURRENTLY devices_location_trgm_idx ON devices
    USING gin (location_name gin_trgm_ops) WHERE location_name IS NOT NULL;

-- The names jobs' scan for codes and locks whose names are due: small once
-- it has caught up (a code leaves it when its name is settled).
DROP INDEX CONCURRENTLY IF EXISTS access_codes_names_due_idx;
CREATE INDEX CONCURRENTLY access_codes_names_due_idx ON access_codes (id) WHERE names_checked_at IS NULL;
DROP INDEX CONCURRENTLY IF EXISTS devices_names_due_idx;
CREATE INDEX CONCURRENTLY devices_names_due_idx ON devices (id) WHERE names_checked_at IS NULL;

-- Deleted codes by when their deletion occurred: the export's order and
-- period (keyset on deleted_at, id). Partial: live codes add no entry.
DROP INDEX CONCURRENTLY IF EXISTS access_codes_deleted_idx;
CREATE INDEX CONCURRENTLY access_codes_deleted_idx ON access_codes (deleted_at, id) WHERE deleted_at IS NOT NULL;

RESET lock_timeout;

-- +goose Down
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS access_codes_deleted_idx;
DROP INDEX CONCURRENTLY IF EXISTS devices_names_due_idx;
DROP INDEX CONCURRENTLY IF EXISTS access_codes_names_due_idx;
DROP INDEX CONCURRENTLY IF EXISTS devices_location_trgm_idx;
DROP INDEX CONCURRENTLY IF EXISTS devices_name_trgm_idx;
DROP INDEX CONCURRENTLY IF EXISTS access_codes_name_trgm_idx;
RESET lock_timeout;
