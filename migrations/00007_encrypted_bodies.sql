-- +goose Up

-- Raw bodies are stored sealed with AES-256-GCM under a data key from
-- CODEWATCH_DATA_KEYS (package datakeys): raw holds nonce || ciphertext || tag
-- and key_id names the key. The additional data binds each ciphertext to its
-- row (table name and message_id), so a body copied into another row does not
-- open. key_id NULL marks a body stored in clear by a version before this
-- one; `codewatch serve` seals those in the background at start-up and
-- `codewatch rekey` does too (see docs/operations.md, "Secrets at rest").
ALTER TABLE events ADD COLUMN key_id text;
ALTER TABLE quarantine ADD COLUMN key_id text;

-- The PIN (Seam's top-level "code") of an event that carries one, for
-- matching a lock's report of a code against a code's PIN without storing
-- the PIN: HMAC-SHA256 under a key derived from the data key key_id names
-- (datakeys.PinHash), so the hash and the body always share one key and
-- `codewatch rekey` renews both together. pin_hint is what people may see
-- (datakeys.PinHint: "••" and the last two digits). NULL when the event
-- carries no PIN, and for bodies still in clear (key_id NULL).
ALTER TABLE events ADD COLUMN pin_hash bytea;
ALTER TABLE events ADD COLUMN pin_hint text;

-- Bodies still in clear, for the start-up pass that seals them. Partial: new
-- rows always have a key_id, so the index is empty once that pass is done
-- and costs ingest nothing but the predicate check. (Rows under an older key
-- are found by `codewatch rekey` walking the primary key instead: an index on
-- key_id would cost every insert.)
CREATE INDEX events_clear_idx ON events (id) WHERE key_id IS NULL;
CREATE INDEX quarantine_clear_idx ON quarantine (id) WHERE key_id IS NULL;

-- +goose Down

-- Dropping key_id would leave sealed bodies that nothing can tell from clear
-- ones. Going back is only possible while no body is sealed (a fresh
-- database, or one that never ran this version's serve).
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM events WHERE key_id IS NOT NULL)
       OR EXISTS (SELECT 1 FROM quarantine WHERE key_id IS NOT NULL) THEN
        RAISE EXCEPTION 'stored bodies are encrypted (key_id set); this version cannot be rolled back without losing them';
    END IF;
END
$$;
-- +goose StatementEnd
DROP INDEX quarantine_clear_idx;
DROP INDEX events_clear_idx;
ALTER TABLE events DROP COLUMN pin_hint;
ALTER TABLE events DROP COLUMN pin_hash;
ALTER TABLE quarantine DROP COLUMN key_id;
ALTER TABLE events DROP COLUMN key_id;
