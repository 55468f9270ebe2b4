-- +goose Up

-- events is the durable log of every verified Seam webhook: the source of truth
-- from which every access code's state is recomputed.
CREATE TABLE events (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- svix-id (or webhook-id): the same message retried by Svix keeps it.
    message_id           text        NOT NULL,
    event_id             text        NOT NULL,
    event_type           text        NOT NULL,
    workspace_id         text,
    occurred_at          timestamptz,
    created_at           timestamptz,
    access_code_id       text,
    device_id            text,
    connected_account_id text,
    -- errors and warnings carried by trouble events, kept apart so the
    -- lifecycle can show Seam's own reason without re-parsing raw bodies.
    details              jsonb,
    -- the body exactly as received (bytes, not re-serialised JSON).
    raw                  bytea       NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    -- Both unique constraints back the dedupe: inserts use ON CONFLICT DO
    -- NOTHING, which waits for a concurrent insert of the same key to finish,
    -- so two copies arriving together store one row.
    CONSTRAINT events_message_id_key UNIQUE (message_id),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

-- Loads one code's history. Partial: only the access_code.* family feeds the
-- lifecycle; queries must repeat the predicate for the planner to use it.
CREATE INDEX events_access_code_idx ON events (access_code_id, occurred_at, event_id)
    WHERE access_code_id IS NOT NULL AND event_type LIKE 'access_code.%';

-- Verified deliveries that could not be used (not JSON, no event_id, ...).
-- Seam signed them, so they are kept, never dropped.
CREATE TABLE quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  text        NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quarantine_message_id_key UNIQUE (message_id)
);

-- +goose Down
DROP TABLE quarantine;
DROP TABLE events;
