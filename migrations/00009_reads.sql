-- +goose Up

-- Ops reads at a million codes (issue 15): exact counts without counting,
-- and indexes that serve the lists' orders so no page sorts or filters
-- thousands of rows.

-- code_counts holds the number of access codes per deletion state and
-- trouble, as rows of signed changes: a trigger on access_codes appends one
-- row per change of a code's key (its deletion state, whether it needs
-- troubleshooting, and then why), and the count of a key is the sum of its
-- rows. Appending never waits on another transaction (no counter row is
-- updated in place, so ingest is never serialised behind it), and the sum
-- read in any snapshot is exactly that snapshot's count. A periodic job
-- (postgres.CompactCounts) folds the rows into one per key, so a read sums a
-- few dozen rows at most, plus the changes of the last few seconds, and
-- vacuums it, so a read passes over few dead rows. It has no index: every
-- read and every fold reads all of it (a few pages), and an index would
-- cost each appended row a write.
CREATE TABLE code_counts (
    deletion_state         text    NOT NULL,
    needs_troubleshooting  boolean NOT NULL,
    -- the reason when needs_troubleshooting, NULL otherwise
    troubleshooting_reason text,
    n                      bigint  NOT NULL
) WITH (
    -- Should the fold's own VACUUM be refused (a database user that does
    -- not own the table), autovacuum still clears it after 1,000 changes.
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000
);

-- +goose StatementBegin
CREATE FUNCTION code_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO code_counts VALUES (NEW.deletion_state, NEW.needs_troubleshooting,
            CASE WHEN NEW.needs_troubleshooting THEN NEW.troubleshooting_reason END, 1);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO code_counts VALUES (OLD.deletion_state, OLD.needs_troubleshooting,
            CASE WHEN OLD.needs_troubleshooting THEN OLD.troubleshooting_reason END, -1);
    ELSE
        INSERT INTO code_counts VALUES
            (OLD.deletion_state, OLD.needs_troubleshooting,
                CASE WHEN OLD.needs_troubleshooting THEN OLD.troubleshooting_reason END, -1),
            (NEW.deletion_state, NEW.needs_troubleshooting,
                CASE WHEN NEW.needs_troubleshooting THEN NEW.troubleshooting_reason END, 1);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION code_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM code_counts;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Most updates change no key (a code's set_on_device, an alert's time): the
-- WHEN condition is checked without calling the function.
CREATE TRIGGER code_counts_update AFTER UPDATE ON access_codes FOR EACH ROW
    WHEN (OLD.deletion_state IS DISTINCT FROM NEW.deletion_state
        OR OLD.needs_troubleshooting IS DISTINCT FROM NEW.needs_troubleshooting
        OR (NEW.needs_troubleshooting AND OLD.troubleshooting_reason IS DISTINCT FROM NEW.troubleshooting_reason))
    EXECUTE FUNCTION code_counts_track();
CREATE TRIGGER code_counts_insert_delete AFTER INSERT OR DELETE ON access_codes FOR EACH ROW
    EXECUTE FUNCTION code_counts_track();
CREATE TRIGGER code_counts_truncate AFTER TRUNCATE ON access_codes FOR EACH STATEMENT
    EXECUTE FUNCTION code_counts_truncate();

-- The codes already stored. CREATE TRIGGER took a lock that keeps writers
-- out until this migration commits, so this count and the trigger's rows
-- cover every code once.
INSERT INTO code_counts
SELECT deletion_state, needs_troubleshooting, CASE WHEN needs_troubleshooting THEN troubleshooting_reason END, count(*)
FROM access_codes GROUP BY 1, 2, 3;

-- The triage list (sort=urgency, needing troubleshooting first): by reason
-- rank (postgres.rankSQL, lifecycle.ReasonsByUrgency), then since when the
-- deletion is unconfirmed, then id, read in index order so a page reads only
-- its own rows. The expressions are spelt exactly as the list's ORDER BY
-- (postgres.troubledOrder); a test fails if they drift apart, e.g. when a
-- reason is added (then a new migration recreates these two indexes).
CREATE INDEX access_codes_troubled_idx ON access_codes (
    (CASE troubleshooting_reason WHEN 'used_after_deletion' THEN 0 WHEN 'still_on_lock' THEN 1
        WHEN 'failed_to_remove' THEN 2 WHEN 'delete_action_failed' THEN 3 WHEN 'removal_delayed' THEN 4
        WHEN 'removal_overdue' THEN 5 ELSE 6 END),
    (COALESCE(unconfirmed_since, deleted_at, 'infinity'::timestamptz)), id)
    WHERE needs_troubleshooting;
-- The same per deletion state, for ?deletion_state=: each state listed is
-- read in order and the few pages merged.
CREATE INDEX access_codes_troubled_state_idx ON access_codes (deletion_state,
    (CASE troubleshooting_reason WHEN 'used_after_deletion' THEN 0 WHEN 'still_on_lock' THEN 1
        WHEN 'failed_to_remove' THEN 2 WHEN 'delete_action_failed' THEN 3 WHEN 'removal_delayed' THEN 4
        WHEN 'removal_overdue' THEN 5 ELSE 6 END),
    (COALESCE(unconfirmed_since, deleted_at, 'infinity'::timestamptz)), id)
    WHERE needs_troubleshooting;
-- Unconfirmed deletions not (yet) in trouble, per state, oldest first: the
-- list's second segment under ?deletion_state=, which would otherwise pass
-- over every unconfirmed deletion of the other states, and every troubled one.
CREATE INDEX access_codes_waiting_idx ON access_codes (deletion_state, unconfirmed_since, id)
    WHERE unconfirmed_since IS NOT NULL AND NOT needs_troubleshooting;

-- +goose Down
DROP INDEX access_codes_waiting_idx;
DROP INDEX access_codes_troubled_state_idx;
DROP INDEX access_codes_troubled_idx;
DROP TRIGGER code_counts_truncate ON access_codes;
DROP TRIGGER code_counts_insert_delete ON access_codes;
DROP TRIGGER code_counts_update ON access_codes;
DROP FUNCTION code_counts_truncate();
DROP FUNCTION code_counts_track();
DROP TABLE code_counts;
