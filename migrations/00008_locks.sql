-- +goose Up

-- Each lock's connectivity, folded from its device.* events and its
-- account's connected_account.* events (lifecycle.FoldDevice). A row also
-- exists for every lock an access code names, so that locks are listed
-- whether or not they ever reported their connectivity.
CREATE TABLE devices (
    -- surrogate key for keyset pagination: assigned once, never changes.
    id                      bigint GENERATED ALWAYS AS IDENTITY,
    device_id               text        PRIMARY KEY,
    workspace_id            text,
    connected_account_id    text,
    -- NULL until an event tells.
    online                  boolean,
    online_changed_at       timestamptz,
    connectivity_error_code text,
    flaky                   boolean     NOT NULL DEFAULT false,
    last_event_at           timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX devices_id_idx ON devices (id);
-- connected_account.* events fan out to the account's locks.
CREATE INDEX devices_account_idx ON devices (connected_account_id) WHERE connected_account_id IS NOT NULL;
-- ?online=false, and the summary's offline locks: few.
CREATE INDEX devices_offline_idx ON devices (id) WHERE online = false;

-- A lock's history: its own events, and its account's.
CREATE INDEX events_device_idx ON events (device_id, occurred_at)
    WHERE device_id IS NOT NULL AND event_type LIKE 'device.%';
CREATE INDEX events_account_idx ON events (connected_account_id, occurred_at)
    WHERE connected_account_id IS NOT NULL AND event_type LIKE 'connected_account.%';

-- Matching a lock's report of a PIN (an unlock without access_code_id, an
-- unmanaged code) with the codes on the same lock that carried it: keyed
-- hashes only (migration 00007), never the PIN.
CREATE INDEX events_pin_idx ON events (device_id, pin_hash)
    WHERE pin_hash IS NOT NULL AND device_id IS NOT NULL;

-- Per lock: its unconfirmed deletions and its codes needing troubleshooting
-- (small partial indexes: most codes are neither).
CREATE INDEX access_codes_device_unconfirmed_idx ON access_codes (device_id)
    WHERE unconfirmed_since IS NOT NULL;
CREATE INDEX access_codes_device_troubled_idx ON access_codes (device_id)
    WHERE needs_troubleshooting;
-- Reminders, and trouble on codes whose deletion is confirmed (the lock's
-- evidence can flag a removed code).
CREATE INDEX access_codes_needs_idx ON access_codes (last_alert_at)
    WHERE needs_troubleshooting;
-- The summary's codes_used_after_deletion_24h.
CREATE INDEX access_codes_used_idx ON access_codes (trouble_since)
    WHERE troubleshooting_reason = 'used_after_deletion';

ALTER TABLE access_codes DROP CONSTRAINT access_codes_troubleshooting_reason_check;
ALTER TABLE access_codes ADD CONSTRAINT access_codes_troubleshooting_reason_check
    CHECK (troubleshooting_reason IN ('removal_overdue', 'removal_delayed', 'failed_to_remove',
                                      'delete_action_failed', 'used_after_deletion', 'still_on_lock'));

-- Locks named by the codes already stored.
INSERT INTO devices (device_id, workspace_id, connected_account_id)
SELECT DISTINCT ON (device_id) device_id, workspace_id, connected_account_id
FROM access_codes WHERE device_id IS NOT NULL
ORDER BY device_id, id DESC
ON CONFLICT DO NOTHING;

-- +goose Down
UPDATE access_codes SET troubleshooting_reason = NULL, trouble_key = NULL, needs_troubleshooting = false
    WHERE troubleshooting_reason IN ('used_after_deletion', 'still_on_lock');
ALTER TABLE access_codes DROP CONSTRAINT access_codes_troubleshooting_reason_check;
ALTER TABLE access_codes ADD CONSTRAINT access_codes_troubleshooting_reason_check
    CHECK (troubleshooting_reason IN ('removal_overdue', 'removal_delayed', 'failed_to_remove',
                                      'delete_action_failed'));
DROP INDEX access_codes_used_idx;
DROP INDEX access_codes_needs_idx;
DROP INDEX access_codes_device_troubled_idx;
DROP INDEX access_codes_device_unconfirmed_idx;
DROP INDEX events_pin_idx;
DROP INDEX events_account_idx;
DROP INDEX events_device_idx;
DROP TABLE devices;
