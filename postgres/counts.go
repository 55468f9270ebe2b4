package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// How the summary counts codes without counting them (migration 00009): a
// trigger on access_codes appends a signed row to code_counts for every
// change of a code's key (deletion state; needs troubleshooting, and why),
// in the transaction that makes the change. The count of a key is the sum
// of its rows, exact in whatever snapshot reads it. Appending takes no lock
// another writer waits for, so ingest is never serialised on a counter row;
// CompactCounts (a periodic job) folds the rows into one per key, so that a
// read sums a few dozen rows plus the changes since the last fold.

// countsSQL sums code_counts per key. It reads the whole table, which has
// no index: a few pages, one row per key plus the changes since the last
// fold (a sequential scan, the only statement here that is one on purpose).
const countsSQL = `SELECT deletion_state, needs_troubleshooting, troubleshooting_reason, sum(n)::bigint
	FROM code_counts GROUP BY 1, 2, 3`

// summaryQuery is one statement of the summary's batch.
type summaryQuery struct {
	sql  string
	args []any
}

// summaryQueries are the summary's statements at now, each answered from an
// index: the counts, and the few figures that are not counts of codes.
func summaryQueries(now time.Time) []summaryQuery {
	return []summaryQuery{
		{sql: countsSQL},
		// access_codes_unconfirmed_since_idx: its first entry.
		{sql: `SELECT min(unconfirmed_since) FROM access_codes WHERE ` + unconfirmedSQL},
		// The newest row by primary key is the newest received: no index
		// on received_at needed.
		{sql: `SELECT max(received_at) FROM (SELECT received_at FROM events ORDER BY id DESC LIMIT 1) t`},
		// alert_deliveries_pending_idx: as many as are pending (few, unless
		// a sink is down).
		{sql: `SELECT count(*) FROM alert_deliveries WHERE status = 'pending'`},
		// devices_offline_idx, access_codes_device_unconfirmed_idx: both few.
		{sql: `SELECT count(*) FROM devices d WHERE d.online = false
			AND EXISTS (SELECT 1 FROM access_codes c WHERE c.device_id = d.device_id AND c.unconfirmed_since IS NOT NULL)`},
		// access_codes_used_idx.
		{sql: `SELECT count(*) FROM access_codes
			WHERE troubleshooting_reason = 'used_after_deletion' AND trouble_since > $1`, args: []any{now.Add(-24 * time.Hour)}},
	}
}

// Summarize counts codes per state and trouble, and reports the age of the
// oldest unconfirmed deletion, the newest event, the outbox, offline locks
// with unconfirmed deletions and codes used after deletion. Every figure is
// exact at AsOf; none is counted by reading the codes it counts.
func (s *Store) Summarize(ctx context.Context) (*lifecycle.StatusSummary, error) {
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	now := s.cfg.Now()
	sum := &lifecycle.StatusSummary{DeletionStates: map[lifecycle.DeletionState]int64{}, ByReason: map[string]int64{}, AsOf: now}
	for _, st := range lifecycle.States {
		sum.DeletionStates[st] = 0
	}
	for _, r := range lifecycle.Reasons {
		sum.ByReason[r] = 0
	}
	qs := summaryQueries(now)
	b := &pgx.Batch{}
	b.Queue(qs[0].sql, qs[0].args...).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var st string
			var needs bool
			var reason *string
			var n int64
			if err := rs.Scan(&st, &needs, &reason, &n); err != nil {
				return err
			}
			sum.DeletionStates[lifecycle.DeletionState(st)] += n
			sum.Total += n
			if needs {
				sum.NeedsTroubleshooting += n
				if reason != nil {
					sum.ByReason[*reason] += n
				}
			}
		}
		return rs.Err()
	})
	b.Queue(qs[1].sql, qs[1].args...).QueryRow(func(r pgx.Row) error { return r.Scan(&sum.OldestUnconfirmedDeletionAt) })
	b.Queue(qs[2].sql, qs[2].args...).QueryRow(func(r pgx.Row) error { return r.Scan(&sum.LastEventReceivedAt) })
	b.Queue(qs[3].sql, qs[3].args...).QueryRow(func(r pgx.Row) error { return r.Scan(&sum.OutboxDepth) })
	b.Queue(qs[4].sql, qs[4].args...).QueryRow(func(r pgx.Row) error { return r.Scan(&sum.LocksOfflineWithUnconfirmedDeletions) })
	b.Queue(qs[5].sql, qs[5].args...).QueryRow(func(r pgx.Row) error { return r.Scan(&sum.CodesUsedAfterDeletion24h) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, unavailable(err)
	}
	if t := sum.OldestUnconfirmedDeletionAt; t != nil {
		age := lifecycle.AgeSeconds(now, *t)
		if age < 0 {
			age = 0
		}
		sum.OldestUnconfirmedDeletionAgeSeconds = &age
	}
	return sum, nil
}

// compactCountsSQL folds code_counts into one row per key and returns how
// many rows it folded. Rows a concurrent transaction appends meanwhile are
// not in the DELETE's snapshot and stay; a concurrent fold waits for this one
// and then finds the rows it read gone (and skips them), so every change is
// counted once. It reads the whole table: a sequential scan, the only way
// to read all of it, over a few thousand rows at most.
const compactCountsSQL = `WITH gone AS (
		DELETE FROM code_counts RETURNING deletion_state, needs_troubleshooting, troubleshooting_reason, n
	), folded AS (
		INSERT INTO code_counts (deletion_state, needs_troubleshooting, troubleshooting_reason, n)
		SELECT deletion_state, needs_troubleshooting, troubleshooting_reason, sum(n) FROM gone
		GROUP BY 1, 2, 3 HAVING sum(n) <> 0
		RETURNING 1
	)
	SELECT count(*) FROM gone`

// CompactCounts folds the changes appended to code_counts since the last
// fold into one row per key, then vacuums the table so that reads pass over
// the folded rows no more, and returns how many rows it folded. The
// summary's cost grows with the changes between folds, not with the codes.
// (A database user that does not own the table cannot vacuum it: Postgres
// then warns and skips, and autovacuum clears it, less often.)
func (s *Store) CompactCounts(ctx context.Context) (int64, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var n int64
	if err := s.pool.QueryRow(ctx, compactCountsSQL).Scan(&n); err != nil {
		return 0, unavailable(err)
	}
	if n > 0 {
		if _, err := s.pool.Exec(ctx, `VACUUM code_counts`); err != nil {
			return n, unavailable(err)
		}
	}
	return n, nil
}
