-- +goose Up

-- On-call (issue 23): routing. Nullable columns
-- without defaults only: catalogue changes, no rewrite, and a replica still
-- on the previous version ignores them (its UPDATEs name its own columns).
SET LOCAL lock_timeout = '5s';

-- What the sinks were told of a code's trouble (postgres/oncall.go):
-- alerted_key is the trouble whose alert went out and is still open at the
-- sinks, alert_sinks the sinks it went to (its resolution goes exactly
-- there, whatever the configuration says by then; NULL: a trouble alerted
-- before this column, which went to every sink). A replica of the previous
-- version leaves both as they are while it changes the trouble: an
-- alerted_key that is not the code's trouble_key reads as "at every sink".
-- No index: written and read only with the code's row.
ALTER TABLE access_codes ADD COLUMN alerted_key text;
ALTER TABLE access_codes ADD COLUMN alert_sinks text[];

-- +goose Down
SET LOCAL lock_timeout = '5s';
ALTER TABLE access_codes DROP COLUMN alert_sinks;
ALTER TABLE access_codes DROP COLUMN alerted_key;
