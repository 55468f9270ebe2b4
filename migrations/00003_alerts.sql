-- +goose Up

-- alerts is the outbox: rows are written in the same transaction as the state
-- change that caused them, so an alert exists if and only if the change does.
CREATE TABLE alerts (
    alert_id       uuid        PRIMARY KEY,
    access_code_id text        NOT NULL,
    type           text        NOT NULL
        CHECK (type IN ('deletion.needs_troubleshooting', 'deletion.resolved', 'deletion.reminder')),
    payload        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_access_code_idx ON alerts (access_code_id);

-- One row per alert and sink. The dispatcher claims due rows with
-- FOR UPDATE SKIP LOCKED and a lease (next_attempt_at in the future), so
-- replicas never deliver the same row at once; 'sent' rows are never retried.
CREATE TABLE alert_deliveries (
    alert_id        uuid        NOT NULL REFERENCES alerts ON DELETE CASCADE,
    sink            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    PRIMARY KEY (alert_id, sink)
);
CREATE INDEX alert_deliveries_due_idx ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- +goose Down
DROP TABLE alert_deliveries;
DROP TABLE alerts;
