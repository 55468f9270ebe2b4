-- +goose NO TRANSACTION
-- +goose Up

-- Matching PINs across data keys (issue "Never a false all-clear", 4). An
-- event's pin_hash is keyed by the data key that sealed it (migration 00007),
-- so during a rotation a code's events hashed under the old key and a lock's
-- report hashed under the new one never compared equal. pin_tokens holds, for
-- an event whose PIN is matched (a code's own access_code.* event, and a
-- lock's report by PIN: an unlock without access_code_id, an unmanaged code
-- appearing) on a lock, one token per data key configured when it was written
-- (or re-keyed): sha256(device_id || pin_hash under that key)
-- (postgres.pinToken). Two such events carry the same PIN on the same lock
-- when their tokens overlap under any key. Rows from before this column have
-- only pin_hash: their token under their own key is computed from it in the
-- index expression below (postgres.pinSetSQL spells it the same), so they
-- match as before, and across keys from the first rekey on.

-- Each statement runs on its own: a lock not granted in 5s fails the
-- migration rather than queueing ingest behind it (it is safe to run again).
SET lock_timeout = '5s';

-- A nullable column without a default: a catalog change only.
ALTER TABLE events ADD COLUMN IF NOT EXISTS pin_tokens bytea[];

-- A CREATE INDEX CONCURRENTLY that failed leaves an invalid index behind:
-- dropped, so that running this again builds it.
DROP INDEX CONCURRENTLY IF EXISTS events_pin_tokens_idx;

-- A code's history looks up the lock's reports whose tokens overlap its own,
-- and the other codes on the lock with the same PIN (postgres/pins_match.go):
-- one GIN probe per code and lock. The tokens name the lock, so a PIN common
-- across a portfolio costs a lookup nothing. fastupdate off: the lookups run
-- in the ingest transaction, and a pending list would be scanned by each of
-- them; an insert adds its two or three entries directly instead. Partial:
-- only the events that are matched (the predicate of every lookup implies
-- this one).
CREATE INDEX CONCURRENTLY events_pin_tokens_idx ON events USING gin
    ((COALESCE(pin_tokens, ARRAY[sha256(decode(replace(device_id, '\', '\\'), 'escape') || pin_hash)])))
    WITH (fastupdate = off)
    WHERE pin_hash IS NOT NULL
        AND ((event_type = 'lock.unlocked' AND access_code_id IS NULL)
            OR event_type = 'access_code.unmanaged.created'
            OR (event_type LIKE 'access_code.%' AND event_type NOT LIKE 'access_code.unmanaged.%'));

RESET lock_timeout;

-- +goose Down
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS events_pin_tokens_idx;
ALTER TABLE events DROP COLUMN IF EXISTS pin_tokens;
RESET lock_timeout;
