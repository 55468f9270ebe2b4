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
-- Unconfirmed deletions, oldest first: the summary's oldest unconfirmed
-- deletion, the overdue sweeper's scan, and (as only unconfirmed deletions
-- can have trouble) the needs_troubleshooting filter and the reminder scan;
-- queries add the implied state condition so the planner can use it.
--
-- No index names a trouble column (needs_troubleshooting, trouble_key, ...):
-- so flagging a code, acknowledging it and reminding about it change no
-- indexed column and are HOT updates, written in place with no index entries.
-- Every index here costs each non-HOT update (a deletion, a removal), so there
-- are no more than needed.
CREATE INDEX access_codes_unconfirmed_idx ON access_codes (deleted_at)
    WHERE deletion_state IN ('awaiting_removal', 'delayed', 'failed');
-- Retention pruning.
CREATE INDEX access_codes_terminal_idx ON access_codes (terminal_at)
    WHERE terminal_at IS NOT NULL;

-- +goose Down
DROP TABLE access_codes;
