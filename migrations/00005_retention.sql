-- +goose Up

-- Events outside any code's access_code.* history (device.*, lock.*,
-- connected_account.*, ...): retention prunes them by when they arrived,
-- with the same horizon as codes. A partial index over just them keeps that
-- a range scan, however large the events table grows.
CREATE INDEX events_unowned_received_idx ON events (received_at)
    WHERE access_code_id IS NULL OR event_type NOT LIKE 'access_code.%';
-- Other events that name a code (lock.unlocked, lock.access_denied carry
-- access_code_id): pruned with the code.
CREATE INDEX events_code_other_idx ON events (access_code_id)
    WHERE access_code_id IS NOT NULL AND event_type NOT LIKE 'access_code.%';
-- Quarantine is pruned by arrival too.
CREATE INDEX quarantine_received_idx ON quarantine (received_at);

-- +goose Down
DROP INDEX quarantine_received_idx;
DROP INDEX events_code_other_idx;
DROP INDEX events_unowned_received_idx;
