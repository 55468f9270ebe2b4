package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// sweepBatch bounds the rows one sweep transaction reads and writes.
const sweepBatch = 500

// Sweep flags deletions that have awaited removal longer than the removal
// timeout, and queues reminders for trouble unresolved longer than repeat
// (0: no reminders). Sweeps may run at once on several replicas: each code is
// rechecked under its row lock, so it is flagged and alerted once.
func (s *Store) Sweep(ctx context.Context, repeat time.Duration) (lifecycle.SweepResult, error) {
	var res lifecycle.SweepResult
	now := s.cfg.Now()
	if s.cfg.RemovalTimeout > 0 {
		cutoff := lifecycle.OverdueCutoff(now, s.cfg.RemovalTimeout)
		for _, q := range []overdueQuery{overdueDeletions, overdueRequests} {
			from := time.Unix(0, 0)
			for {
				n, flagged, last, err := s.sweepOverdue(ctx, q, now, cutoff, from)
				res.Overdue += flagged
				if err != nil {
					return res, err
				}
				if n < sweepBatch {
					break
				}
				from = last
			}
		}
	}
	if repeat > 0 {
		for {
			n, err := s.remind(ctx, now, now.Add(-repeat))
			res.Reminders += n
			if err != nil {
				return res, err
			}
			if n < sweepBatch {
				break
			}
		}
	}
	return res, nil
}

// overdueCandidatesSQL reads a batch of overdue deletions. The state
// condition implies access_codes_unconfirmed_idx's predicate; repeating that
// predicate here would make the planner count the state twice and misjudge
// how many rows match.
const overdueCandidatesSQL = `SELECT access_code_id, deleted_at FROM access_codes
	WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL
		AND deleted_at >= $3 AND deleted_at < $1
	ORDER BY deleted_at LIMIT $2`

// overdueQuery is one kind of overdue deletion: how to find candidates, and
// the locking SELECT that rechecks them.
type overdueQuery struct{ candidates, lock string }

var (
	overdueDeletions = overdueQuery{overdueCandidatesSQL, `SELECT ` + codeColumns + ` FROM access_codes
		WHERE access_code_id = ANY($1) AND deletion_state = 'awaiting_removal'
			AND trouble_key IS NULL AND deleted_at < $2
		ORDER BY access_code_id FOR UPDATE`}
	// codewatch's requests that Seam has not reported deleting in time
	// (access_codes_requested_idx; few).
	overdueRequests = overdueQuery{`SELECT access_code_id, unconfirmed_since FROM access_codes
		WHERE deletion_state = 'deletion_requested' AND trouble_key IS NULL
			AND unconfirmed_since >= $3 AND unconfirmed_since < $1
		ORDER BY unconfirmed_since LIMIT $2`, `SELECT ` + codeColumns + ` FROM access_codes
		WHERE access_code_id = ANY($1) AND deletion_state = 'deletion_requested'
			AND trouble_key IS NULL AND unconfirmed_since < $2
		ORDER BY access_code_id FOR UPDATE`}
)

// ExplainSweep returns the plan of the sweep's candidate scan at now, for the
// benchmark and for tests that keep it on its index.
func (s *Store) ExplainSweep(ctx context.Context, now time.Time) (string, error) {
	return s.explain(ctx, overdueCandidatesSQL, customPlan, lifecycle.OverdueCutoff(now, s.cfg.RemovalTimeout), sweepBatch, time.Unix(0, 0))
}

// sweepOverdue flags up to sweepBatch overdue deletions deleted at or after
// from (keyset over deleted_at: access_codes_unconfirmed_idx also holds
// deletions already flagged, which the scan passes once). It returns how
// many candidates it read, how many it flagged, and the last deleted_at read.
//
// The candidates are read without locks, then locked in access_code_id order
// (the lock order ingest uses; an UPDATE over the candidates would lock them
// in plan order and could deadlock with an ingest batch), and the overdue
// condition is repeated in the locking SELECT: Postgres rechecks it on a row
// that another transaction changed meanwhile (a removal arrived), and leaves
// that row out. The rules are the same as at ingest: Assess on the stored
// row, whose fold has not changed, only the time.
func (s *Store) sweepOverdue(ctx context.Context, q overdueQuery, now, cutoff, from time.Time) (read, flagged int, last time.Time, err error) {
	var flags []string
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rs, err := tx.Query(ctx, q.candidates, customPlan, cutoff, sweepBatch, from)
		if err != nil {
			return unavailable(err)
		}
		ids, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (string, error) {
			var id string
			err := r.Scan(&id, &last)
			return id, err
		})
		if err != nil {
			return unavailable(err)
		}
		if len(ids) == 0 {
			return errRollback
		}
		rows, err := lockRows(ctx, tx, q.lock, ids, cutoff)
		if err != nil {
			return unavailable(err)
		}
		locks, err := s.locksOf(ctx, tx, devicesOf(rows))
		if err != nil {
			return unavailable(err)
		}
		changes := make([]change, 0, len(rows))
		for _, r := range rows {
			st := rowState(r)
			changes = append(changes, s.decide(now, r, st, lifecycle.Assess(st.Summary(), now, s.cfg.RemovalTimeout), locks[st.DeviceID]))
		}
		if flags, err = s.writeFlags(ctx, tx, now, changes); err != nil {
			return unavailable(err)
		}
		read, flagged = len(ids), len(rows)
		return nil
	})
	if err != nil {
		return 0, 0, last, err
	}
	s.reportFlags(flags)
	return read, flagged, last, nil
}

// writeFlags writes the trouble columns of flagged rows (a HOT update: no
// index names them) and their alerts.
func (s *Store) writeFlags(ctx context.Context, tx pgx.Tx, now time.Time, changes []change) ([]string, error) {
	n := len(changes)
	ids, reasons, details, keys := make([]string, 0, n), mk(0), mk(0), mk(0)
	needs, since, lastAlert, seq := make([]bool, 0, n), mkt(0), mkt(0), make([]int64, 0, n)
	var alerts []*lifecycle.AlertPayload
	var sinks [][]string
	s.gate(now, changes)
	for _, c := range changes {
		w := s.newRow(now, c)
		ids = append(ids, c.old.AccessCodeID)
		needs, reasons, details, keys = append(needs, w.needs), append(reasons, w.reason), append(details, w.details), append(keys, w.key)
		since, lastAlert, seq = append(since, w.since), append(lastAlert, w.lastAlert), append(seq, c.old.alertSeq)
		if c.alert != nil {
			alerts, sinks = append(alerts, c.alert), append(sinks, c.sinks)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE access_codes c SET needs_troubleshooting = u.needs,
			troubleshooting_reason = u.reason, troubleshooting_details = u.details::jsonb,
			trouble_key = u.key, trouble_since = u.since, last_alert_at = u.last_alert,
			alert_seq = u.seq, updated_at = $9
		FROM unnest($1::text[], $2::bool[], $3::text[], $4::text[], $5::text[],
			$6::timestamptz[], $7::timestamptz[], $8::bigint[])
			AS u(id, needs, reason, details, key, since, last_alert, seq)
		WHERE c.access_code_id = u.id`,
		ids, needs, reasons, details, keys, since, lastAlert, seq, now)
	queueAlertCols(b, changes)
	if err := s.queueAlerts(ctx, tx, b, alerts, sinks); err != nil {
		return nil, err
	}
	return flagReasons(alerts), tx.SendBatch(ctx, b).Close()
}

// remind queues a reminder for up to sweepBatch codes whose trouble has gone
// without an alert since cutoff, and restarts their reminder clocks. SKIP
// LOCKED: a code being ingested now is left for the next sweep, and this
// transaction never waits for a row lock, so it cannot take part in a
// deadlock whatever order it locks in. A reminder goes where the routes
// say now and where its trouble went (gate, oncall.go).
func (s *Store) remind(ctx context.Context, now, cutoff time.Time) (int, error) {
	n := 0
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// Codes needing troubleshooting are few: access_codes_needs_idx
		// serves this scan.
		rows, err := lockRows(ctx, tx, `SELECT `+codeColumns+` FROM access_codes
		WHERE needs_troubleshooting AND last_alert_at < $1
		ORDER BY last_alert_at LIMIT $2
		FOR UPDATE SKIP LOCKED`, customPlan, cutoff, sweepBatch)
		if err != nil {
			return unavailable(err)
		}
		if len(rows) == 0 {
			return errRollback
		}
		locks, err := s.locksOf(ctx, tx, devicesOf(rows))
		if err != nil {
			return unavailable(err)
		}
		changes := make([]change, 0, len(rows))
		for _, r := range rows {
			c := change{old: r, alert: newAlert(now, r, lifecycle.AlertReminder, rowState(r), rowFlag(r), "", locks[deref(r.DeviceID)])}
			_, open := s.alertState(r)
			c.sinks, c.cols = s.sendTrouble(c.alert, lifecycle.Gated{Send: true, Key: deref(r.troubleKey)}, open, now)
			changes = append(changes, c)
		}
		if err := s.writeAlerts(ctx, tx, changes); err != nil {
			return err
		}
		n = len(rows)
		return nil
	})
	return n, err
}

// lockRows runs a locking SELECT of codeColumns.
func lockRows(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]*codeRow, error) {
	rs, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var rows []*codeRow
	for rs.Next() {
		c, err := scanCode(rs)
		if err != nil {
			return nil, err
		}
		rows = append(rows, c)
	}
	return rows, rs.Err()
}
