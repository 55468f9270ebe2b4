-- +goose Up

-- access_codes holds each code's state as last folded from its events. It is
-- derived data: `codewatch replay` rebuilds it from the events table.
CREATE TABLE access_codes (
    -- surrogate key for keyset pagination: assigned once, never changes.
    id                      bigint GENERATED ALWAYS AS IDENTITY,
    access_code_id          text        PRIMARY KEY,
    workspace_id            text,
    device_id               text,
    connected_account_id    text,
    deletion_state          text        NOT NULL DEFAULT 'active'
        CHECK (deletion_state IN ('active', 'awaiting_removal', 'delayed', 'failed',
                                  'removed', 'deleted_not_programmed')),
    on_device               boolean,
    needs_troubleshooting   boolean     NOT NULL DEFAULT false,
    troubleshooting_reason  text
        CHECK (troubleshooting_reason IN ('removal_overdue', 'removal_delayed', 'failed_to_remove')),
    troubleshooting_details jsonb,
    -- identifies the current trouble (the trouble event's id, or
    -- 'overdue:' || the deletion's event id); NULL when there is none.
    trouble_key             text,
    trouble_since           timestamptz,
    -- the trouble_key an operator acknowledged; new trouble has a new key.
    acknowledged_key        text,
    acknowledged_at         timestamptz,
    acknowledged_by         text,
    acknowledgement_note    text,
    deletion_event_id       text,
    created_at              timestamptz,
    set_on_device_at        timestamptz,
    deleted_at              timestamptz,
    removed_from_device_at  timestamptz,
    last_event_at           timestamptz,
    -- when the code reached a terminal state; retention prunes from here.
    terminal_at             timestamptz,
    last_alert_at           timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now()
)
-- Free space on each page lets an update that changes no indexed column
-- (set_on_device, created) stay on its page as a HOT update, with no index
-- writes.
WITH (fillfactor = 80);

CREATE UNIQUE INDEX access_codes_id_idx ON access_codes (id);
-- Listing filters, each ending in id for keyset pagination (ORDER BY id DESC).
CREATE INDEX access_codes_state_idx ON access_codes (deletion_state, id);
CREATE INDEX access_codes_workspace_idx ON access_codes (workspace_id, id);
CREATE INDEX access_codes_device_idx ON access_codes (device_id, id);
-- Codes needing troubleshooting: few at any time, so this also serves the
-- reminder scan (needs_troubleshooting AND last_alert_at < ...). Every index
-- here costs each non-HOT update of a code, so there are no more than needed.
CREATE INDEX access_codes_trouble_idx ON access_codes (id) WHERE needs_troubleshooting;
-- Oldest unconfirmed deletion (summary, metrics).
CREATE INDEX access_codes_unconfirmed_idx ON access_codes (deleted_at)
    WHERE deletion_state IN ('awaiting_removal', 'delayed', 'failed');
-- The overdue sweeper's scan: only deletions still waiting and not yet
-- flagged are in it, so it stays small however many codes are tracked.
CREATE INDEX access_codes_overdue_idx ON access_codes (deleted_at)
    WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL;
-- Retention pruning.
CREATE INDEX access_codes_terminal_idx ON access_codes (terminal_at)
    WHERE terminal_at IS NOT NULL;

-- +goose Down
DROP TABLE access_codes;
