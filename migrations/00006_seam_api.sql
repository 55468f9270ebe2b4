-- +goose Up

-- Where an event came from: a Seam webhook, or codewatch's own use of Seam's
-- API ('poll': its requests, polls and events backfilled from events/list).
-- A constant default adds the column without rewriting the table; NOT VALID
-- skips checking old rows (they all hold the default).
ALTER TABLE events ADD COLUMN source text NOT NULL DEFAULT 'webhook';
ALTER TABLE events ADD CONSTRAINT events_source_check
    CHECK (source IN ('webhook', 'poll')) NOT VALID;

-- A code's history now includes codewatch's own events (codewatch.*) and
-- the lock's unlocks and refusals that name it (lock.unlocked,
-- lock.access_denied: the lock's own evidence). A code's own events (not the
-- lock's) are access_code.* and codewatch.*: only they make a code's row, so
-- a lock's event naming a code codewatch does not keep is pruned like any
-- event in no code's history. postgres.historySQL and postgres.ownSQL spell
-- these predicates; queries repeat them so the planner can use the indexes.
DROP INDEX events_access_code_idx;
CREATE INDEX events_access_code_idx ON events (access_code_id, occurred_at, event_id)
    WHERE access_code_id IS NOT NULL AND (event_type LIKE 'access_code.%' OR event_type LIKE 'codewatch.%' OR event_type IN ('lock.unlocked', 'lock.access_denied'));
DROP INDEX events_unowned_received_idx;
CREATE INDEX events_unowned_received_idx ON events (received_at)
    WHERE access_code_id IS NULL OR NOT (event_type LIKE 'access_code.%' OR event_type LIKE 'codewatch.%');
DROP INDEX events_code_other_idx;
CREATE INDEX events_code_other_idx ON events (access_code_id)
    WHERE access_code_id IS NOT NULL AND NOT (event_type LIKE 'access_code.%' OR event_type LIKE 'codewatch.%');

ALTER TABLE access_codes DROP CONSTRAINT access_codes_deletion_state_check;
ALTER TABLE access_codes ADD CONSTRAINT access_codes_deletion_state_check
    CHECK (deletion_state IN ('active', 'deletion_requested', 'awaiting_removal', 'delayed',
                              'failed', 'removed', 'deleted_not_programmed'));
ALTER TABLE access_codes DROP CONSTRAINT access_codes_troubleshooting_reason_check;
ALTER TABLE access_codes ADD CONSTRAINT access_codes_troubleshooting_reason_check
    CHECK (troubleshooting_reason IN ('removal_overdue', 'removal_delayed', 'failed_to_remove',
                                      'delete_action_failed'));

-- 'webhook' or 'poll' on a removed code: how its removal was confirmed.
ALTER TABLE access_codes ADD COLUMN confirmed_by text;
-- codewatch's own deletion request and its action attempt (JSON of
-- lifecycle.DeletionRequest), and what Seam's API last said of the code
-- (lifecycle.SeamView).
ALTER TABLE access_codes ADD COLUMN deletion_request jsonb;
ALTER TABLE access_codes ADD COLUMN seam jsonb;
-- Since when the code's deletion is unconfirmed (its deleted_at, or the
-- request's time before Seam's deletion came); NULL when it is not. Lists
-- sort unconfirmed codes by it and the summary reads the oldest.
ALTER TABLE access_codes ADD COLUMN unconfirmed_since timestamptz;
-- When reconciliation should next look the code up in Seam's API; NULL when
-- it should not (confirmed, or reconciliation off).
ALTER TABLE access_codes ADD COLUMN next_reconcile_at timestamptz;

UPDATE access_codes SET unconfirmed_since = deleted_at
    WHERE deletion_state IN ('awaiting_removal', 'delayed', 'failed');

CREATE INDEX access_codes_unconfirmed_since_idx ON access_codes (unconfirmed_since, id)
    WHERE unconfirmed_since IS NOT NULL;
-- The sweep's requests awaiting Seam's deletion (few).
CREATE INDEX access_codes_requested_idx ON access_codes (unconfirmed_since)
    WHERE deletion_state = 'deletion_requested';
-- The reconciler's scan for codes due.
CREATE INDEX access_codes_reconcile_idx ON access_codes (next_reconcile_at)
    WHERE next_reconcile_at IS NOT NULL;

-- +goose Down
DROP INDEX access_codes_reconcile_idx;
DROP INDEX access_codes_requested_idx;
DROP INDEX access_codes_unconfirmed_since_idx;
ALTER TABLE access_codes DROP COLUMN next_reconcile_at;
ALTER TABLE access_codes DROP COLUMN unconfirmed_since;
ALTER TABLE access_codes DROP COLUMN seam;
ALTER TABLE access_codes DROP COLUMN deletion_request;
ALTER TABLE access_codes DROP COLUMN confirmed_by;
-- Codes in the new state or with the new reason go back to what the old
-- schema can say; a replay after upgrading again restores them.
UPDATE access_codes SET deletion_state = 'active' WHERE deletion_state = 'deletion_requested';
UPDATE access_codes SET troubleshooting_reason = NULL, trouble_key = NULL, needs_troubleshooting = false
    WHERE troubleshooting_reason = 'delete_action_failed';
ALTER TABLE access_codes DROP CONSTRAINT access_codes_troubleshooting_reason_check;
ALTER TABLE access_codes ADD CONSTRAINT access_codes_troubleshooting_reason_check
    CHECK (troubleshooting_reason IN ('removal_overdue', 'removal_delayed', 'failed_to_remove'));
ALTER TABLE access_codes DROP CONSTRAINT access_codes_deletion_state_check;
ALTER TABLE access_codes ADD CONSTRAINT access_codes_deletion_state_check
    CHECK (deletion_state IN ('active', 'awaiting_removal', 'delayed', 'failed',
                              'removed', 'deleted_not_programmed'));
DROP INDEX events_code_other_idx;
CREATE INDEX events_code_other_idx ON events (access_code_id)
    WHERE access_code_id IS NOT NULL AND event_type NOT LIKE 'access_code.%';
DROP INDEX events_unowned_received_idx;
CREATE INDEX events_unowned_received_idx ON events (received_at)
    WHERE access_code_id IS NULL OR event_type NOT LIKE 'access_code.%';
DROP INDEX events_access_code_idx;
CREATE INDEX events_access_code_idx ON events (access_code_id, occurred_at, event_id)
    WHERE access_code_id IS NOT NULL AND event_type LIKE 'access_code.%';
ALTER TABLE events DROP CONSTRAINT events_source_check;
ALTER TABLE events DROP COLUMN source;
