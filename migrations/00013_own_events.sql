-- +goose NO TRANSACTION
-- +goose Up

-- A code's own events (issue 21, "Fast at any size", point 1). Ingest
-- refolds a code from its own events (access_code.*, codewatch.*: a handful
-- even for an old code) and the few of the lock's events that can change its
-- verdict (postgres/history.go), not from its whole history: a staff code
-- used at the lock every day has thousands of lock.unlocked events, which
-- events_access_code_idx holds beside its own, so reading the own ones
-- through it read all of them. events_own_idx holds the own ones only; its
-- predicate is postgres.ownOf's, which queries repeat. events_unlock_idx
-- finds the newest unlock naming a code on one lock (or on none) in one row,
-- however many of its unlocks are on other locks.

-- Each statement runs on its own: a lock not granted in 5s fails the
-- migration rather than queueing ingest behind it (it is safe to run again).
SET lock_timeout = '5s';

-- A CREATE INDEX CONCURRENTLY that failed leaves an invalid index behind:
-- dropped, so that running this again builds it.
DROP INDEX CONCURRENTLY IF EXISTS events_own_idx;
CREATE INDEX CONCURRENTLY events_own_idx ON events (access_code_id, occurred_at, event_id)
    WHERE access_code_id IS NOT NULL AND (event_type LIKE 'access_code.%' OR event_type LIKE 'codewatch.%');
DROP INDEX CONCURRENTLY IF EXISTS events_unlock_idx;
CREATE INDEX CONCURRENTLY events_unlock_idx ON events (access_code_id, device_id, occurred_at, event_id)
    WHERE access_code_id IS NOT NULL AND event_type = 'lock.unlocked';

RESET lock_timeout;

-- +goose Down
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS events_unlock_idx;
DROP INDEX CONCURRENTLY IF EXISTS events_own_idx;
RESET lock_timeout;
