-- +goose Up

-- Alerts are delivered by River jobs (one per alert and sink), in each code's
-- order: a code's alerts are numbered 1, 2, 3... under the code's row lock,
-- and a delivery waits until every earlier delivery of the same code to the
-- same sink is sent or given up.
ALTER TABLE alerts ADD COLUMN sequence bigint;
UPDATE alerts a SET sequence = n.seq
FROM (SELECT alert_id, row_number() OVER (PARTITION BY access_code_id ORDER BY created_at, alert_id) AS seq
      FROM alerts) n
WHERE a.alert_id = n.alert_id;
ALTER TABLE alerts ALTER COLUMN sequence SET NOT NULL;
-- Replaces alerts_access_code_idx: a code's alerts in order, for "is an
-- earlier one still pending?" and for a code's page.
CREATE UNIQUE INDEX alerts_code_sequence_idx ON alerts (access_code_id, sequence);
DROP INDEX alerts_access_code_idx;

-- The last sequence handed out per code, bumped under the row lock. Adding a
-- column with a constant default rewrites nothing.
ALTER TABLE access_codes ADD COLUMN alert_seq bigint NOT NULL DEFAULT 0;
UPDATE access_codes c SET alert_seq = m.seq
FROM (SELECT access_code_id, max(sequence) AS seq FROM alerts GROUP BY 1) m
WHERE c.access_code_id = m.access_code_id;

-- given_up: retried for CODEWATCH_ALERT_MAX_AGE (or sent to a sink no longer
-- configured) and abandoned; recorded, logged and counted, never silent.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_status_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'given_up'));
ALTER TABLE alert_deliveries ADD COLUMN given_up_at timestamptz;
-- The River job that delivers this row, so a delivery that finishes can wake
-- the code's next one at once instead of leaving it to its snooze.
ALTER TABLE alert_deliveries ADD COLUMN job_id bigint;
-- next_attempt_at now only tells a waiting delivery when the one ahead of it
-- is next tried; the index serves the outbox's pending list.
ALTER INDEX alert_deliveries_due_idx RENAME TO alert_deliveries_pending_idx;

-- +goose Down
ALTER INDEX alert_deliveries_pending_idx RENAME TO alert_deliveries_due_idx;
ALTER TABLE alert_deliveries DROP COLUMN job_id;
ALTER TABLE alert_deliveries DROP COLUMN given_up_at;
DELETE FROM alert_deliveries WHERE status = 'given_up';
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_status_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_status_check
    CHECK (status IN ('pending', 'sent'));
ALTER TABLE access_codes DROP COLUMN alert_seq;
CREATE INDEX alerts_access_code_idx ON alerts (access_code_id);
DROP INDEX alerts_code_sequence_idx;
ALTER TABLE alerts DROP COLUMN sequence;
