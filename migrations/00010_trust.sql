-- +goose Up

-- Never a false all-clear (issue 19). Both changes take access_codes' lock
-- only for a catalogue update (a nullable column without a default is not a
-- rewrite); lock_timeout makes this give up, and the runner retry, rather
-- than queue ingest behind a long transaction that holds the table.
SET LOCAL lock_timeout = '5s';

-- The evidence that confirmed a removed code (lifecycle.Confirmation): the
-- Seam event and its svix id, or the lookup and its seam-request-id. Codes
-- confirmed before this have it NULL until they are refolded (codewatch
-- replay).
ALTER TABLE access_codes ADD COLUMN confirmation jsonb;

-- One deletion request per code across replicas and CLIs: whoever holds a
-- code's claim is the only one asking Seam to delete it. A claim is a lease
-- (expires_at) so that a process that died holding one does not hold it
-- forever; taking one is a single INSERT ... ON CONFLICT that only replaces
-- an expired claim (postgres/claims.go). A table, not an advisory lock: a
-- session lock does not survive PgBouncer's transaction pooling, and a
-- transaction held open across Seam's call would hold a connection for it.
CREATE TABLE deletion_claims (
    access_code_id text        PRIMARY KEY,
    holder         text        NOT NULL,
    expires_at     timestamptz NOT NULL
);

-- +goose Down
SET LOCAL lock_timeout = '5s';
DROP TABLE deletion_claims;
ALTER TABLE access_codes DROP COLUMN confirmation;
