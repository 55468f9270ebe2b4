package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// Tallies: counts over the domain's tables that the benchmarks (test/bench)
// check a run against: every acknowledged event stored once, the codes a
// load completed folded, the sweep's flags and alerts, the summary's counts
// against a count of the codes. They are not the service's reads, and like
// seeding (seed.go) they run under the caller's context alone: they read
// whole tables.

// StoredOnce is how a list of acknowledged deliveries stands in events.
type StoredOnce struct {
	// Events, DistinctMessages, DistinctEvents: over the whole table.
	Events, DistinctMessages, DistinctEvents int64
	// Of the deliveries: not stored, stored more than once by message id,
	// not stored exactly once by event id, stored under another event id.
	Missing, DuplicatedMessages, NotOnceByEvent, Mismatched int64
}

// CountStoredOnce tallies events against the deliveries acknowledged:
// messageIDs[i] with eventIDs[i].
func (s *Store) CountStoredOnce(ctx context.Context, messageIDs, eventIDs []string) (StoredOnce, error) {
	var r StoredOnce
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT message_id), count(DISTINCT event_id) FROM events`).
		Scan(&r.Events, &r.DistinctMessages, &r.DistinctEvents); err != nil {
		return r, err
	}
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE cm = 0),
			count(*) FILTER (WHERE cm > 1),
			count(*) FILTER (WHERE ce <> 1),
			count(*) FILTER (WHERE cm = 1 AND NOT same)
		FROM (SELECT
				(SELECT count(*) FROM events ev WHERE ev.message_id = a.m) AS cm,
				(SELECT count(*) FROM events ev WHERE ev.event_id = a.e) AS ce,
				EXISTS (SELECT 1 FROM events ev WHERE ev.message_id = a.m AND ev.event_id = a.e) AS same
			FROM unnest($1::text[], $2::text[]) AS a(m, e)) x`, messageIDs, eventIDs).
		Scan(&r.Missing, &r.DuplicatedMessages, &r.NotOnceByEvent, &r.Mismatched)
	return r, err
}

// CountRemovedUntroubled returns how many of the codes ids are removed and
// need no troubleshooting.
func (s *Store) CountRemovedUntroubled(ctx context.Context, ids []string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM access_codes
		WHERE access_code_id = ANY($1) AND deletion_state = 'removed' AND NOT needs_troubleshooting`, ids).Scan(&n)
	return n, err
}

// CountAlertsByType returns the number of alerts of each type.
func (s *Store) CountAlertsByType(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT type, count(*) FROM alerts GROUP BY type`)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var t string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&t, &n}, func() error {
		out[t] = n
		return nil
	})
	return out, err
}

// CountOverdue returns how many deletions awaiting removal since before
// cutoff are not flagged (what a sweep at cutoff flags), and how many codes
// are flagged removal_overdue.
func (s *Store) CountOverdue(ctx context.Context, cutoff time.Time) (unflagged, flagged int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL
				AND deleted_at < $1),
			count(*) FILTER (WHERE needs_troubleshooting AND troubleshooting_reason = 'removal_overdue')
		FROM access_codes`, cutoff).Scan(&unflagged, &flagged)
	return unflagged, flagged, err
}

// CountCodesByState counts the codes in each deletion state, and those
// needing troubleshooting, row by row (not from code_counts, which the
// summary reads).
func (s *Store) CountCodesByState(ctx context.Context) (states map[lifecycle.DeletionState]int64, needs int64, err error) {
	rows, err := s.pool.Query(ctx, `SELECT deletion_state, count(*), count(*) FILTER (WHERE needs_troubleshooting) FROM access_codes GROUP BY 1`)
	if err != nil {
		return nil, 0, err
	}
	states = map[lifecycle.DeletionState]int64{}
	var st string
	var n, nd int64
	_, err = pgx.ForEachRow(rows, []any{&st, &n, &nd}, func() error {
		states[lifecycle.DeletionState(st)] = n
		needs += nd
		return nil
	})
	return states, needs, err
}
