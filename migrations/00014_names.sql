-- +goose Up

-- Names people use (issue 22): a code's name in Seam and its lock's
-- display_name, location and time zone, fetched from Seam's API by the names
-- jobs (package names) and, without an API key, the lock's custom metadata
-- from webhook bodies. Nullable columns without defaults: catalogue changes
-- only, no rewrite; lock_timeout makes this give up, and the runner retry,
-- rather than queue ingest behind a long transaction.
SET LOCAL lock_timeout = '5s';

-- Trigram indexes (migration 00015) make ?q= a few index probes at a
-- million codes. pg_trgm ships with PostgreSQL (contrib) and is a trusted
-- extension: the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The code's name (access_codes/get's name), and when codewatch first
-- settled it: NULL while its fetch is due (access_codes_names_due_idx), so
-- an alert about it waits a moment for it.
ALTER TABLE access_codes ADD COLUMN access_code_name text,
    ADD COLUMN names_checked_at timestamptz;

-- The lock's display_name, location name and time zone, its custom
-- metadata and the lock maker, as devices/get said them; the same
-- names_checked_at.
ALTER TABLE devices ADD COLUMN device_name text,
    ADD COLUMN location_name text,
    ADD COLUMN time_zone text,
    ADD COLUMN custom_metadata jsonb,
    ADD COLUMN provider text,
    ADD COLUMN names_checked_at timestamptz;

-- +goose Down
SET LOCAL lock_timeout = '5s';
ALTER TABLE devices DROP COLUMN names_checked_at, DROP COLUMN provider, DROP COLUMN custom_metadata,
    DROP COLUMN time_zone, DROP COLUMN location_name, DROP COLUMN device_name;
ALTER TABLE access_codes DROP COLUMN names_checked_at, DROP COLUMN access_code_name;
