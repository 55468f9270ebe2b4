package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// SweepResult counts what one sweep did.
type SweepResult struct {
	Overdue   int
	Reminders int
}

// sweepBatch bounds the rows one sweep transaction reads and writes.
const sweepBatch = 500

// Sweep flags deletions that have awaited removal longer than the removal
// timeout, and queues reminders for trouble unresolved longer than repeat
// (0: no reminders). Replicas may sweep at once: overdue flagging runs under
// an advisory lock (one replica at a time, the others skip) and its UPDATE
// repeats the overdue condition, which Postgres rechecks on a row another
// transaction changed; reminders claim rows with FOR UPDATE SKIP LOCKED. So
// each code is flagged and alerted once.
func (s *Store) Sweep(ctx context.Context, repeat time.Duration) (SweepResult, error) {
	var res SweepResult
	now := s.cfg.Now()
	if s.cfg.RemovalTimeout > 0 {
		cutoff := OverdueCutoff(now, s.cfg.RemovalTimeout)
		from := time.Unix(0, 0)
		for {
			n, flagged, last, err := s.sweepOverdue(ctx, now, cutoff, from)
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
	if repeat > 0 {
		cutoff := now.Add(-repeat)
		for {
			// Only unconfirmed deletions can have trouble, and they are
			// few: access_codes_unconfirmed_idx serves this scan.
			n, err := s.sweepTx(ctx, now, `SELECT `+codeColumns+` FROM access_codes
				WHERE `+unconfirmedSQL+` AND needs_troubleshooting AND last_alert_at < $1
				ORDER BY last_alert_at LIMIT $2
				FOR UPDATE SKIP LOCKED`, cutoff, s.remind)
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

// sweepTx claims up to sweepBatch rows with query and lets act queue their
// writes, in one transaction.
func (s *Store) sweepTx(ctx context.Context, now time.Time, query string, cutoff time.Time,
	act func(b *pgx.Batch, now time.Time, rows []*codeRow)) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, unavailable(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	rs, err := tx.Query(ctx, query, cutoff, sweepBatch)
	if err != nil {
		return 0, unavailable(err)
	}
	var rows []*codeRow
	for rs.Next() {
		c, err := scanCode(rs)
		if err != nil {
			rs.Close()
			return 0, unavailable(err)
		}
		rows = append(rows, c)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, unavailable(err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	b := &pgx.Batch{}
	act(b, now, rows)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, unavailable(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, unavailable(err)
	}
	return len(rows), nil
}

// sweepLockID names the advisory lock that lets one replica sweep at a time;
// the others skip the round rather than queue behind it.
const sweepLockID = 0x636f64657761 // "codewa"

// sweepOverdue flags up to sweepBatch overdue deletions. The rules are the
// same as at ingest (Assess on the stored row: the fold has not changed, only
// the time). The write is one statement whose WHERE repeats the overdue
// condition: a row that ingest changed meanwhile (a removal arrived) is
// rechecked under its row lock and left alone, and only the rows actually
// flagged get their alert. It reads up to sweepBatch candidates deleted at or
// after from (keyset over deleted_at: the index also holds deletions already
// flagged, which the scan passes once) and returns how many it read, how
// many it flagged, and the last deleted_at read.
func (s *Store) sweepOverdue(ctx context.Context, now, cutoff, from time.Time) (read, flagged int, last time.Time, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, last, unavailable(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	var mine bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sweepLockID).Scan(&mine); err != nil {
		return 0, 0, last, unavailable(err)
	}
	if !mine {
		return 0, 0, last, nil
	}
	// The state condition implies access_codes_unconfirmed_idx's predicate;
	// repeating that predicate here would make the planner count the state
	// twice and misjudge how many rows match.
	rs, err := tx.Query(ctx, `SELECT `+codeColumns+` FROM access_codes
		WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL
			AND deleted_at >= $3 AND deleted_at < $1
		ORDER BY deleted_at LIMIT $2`, cutoff, sweepBatch, from)
	if err != nil {
		return 0, 0, last, unavailable(err)
	}
	var rows []*codeRow
	for rs.Next() {
		c, err := scanCode(rs)
		if err != nil {
			rs.Close()
			return 0, 0, last, unavailable(err)
		}
		rows = append(rows, c)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, 0, last, unavailable(err)
	}
	if len(rows) == 0 {
		return 0, 0, last, nil
	}
	n := len(rows)
	ids, delIDs, reasons, details, keys := make([]string, 0, n), mk(0), mk(0), mk(0), mk(0)
	needs, since, lastAlert := make([]bool, 0, n), mkt(0), mkt(0)
	var alerts []*pendingAlert
	for _, r := range rows {
		st := rowState(r)
		c := s.decide(now, r, st, Assess(st.Summary(), now, s.cfg.RemovalTimeout))
		w := s.newRow(now, c)
		ids, delIDs = append(ids, r.AccessCodeID), append(delIDs, r.deletionEventID)
		needs, reasons, details, keys = append(needs, w.needs), append(reasons, w.reason), append(details, w.details), append(keys, w.key)
		since, lastAlert = append(since, w.since), append(lastAlert, w.lastAlert)
		if c.alert != nil {
			alerts = append(alerts, c.alert)
		}
	}
	aIDs, aCodes, aTypes, aPayloads := alertArrays(alerts)
	err = tx.QueryRow(ctx, `
		WITH flagged AS (
			UPDATE access_codes c SET needs_troubleshooting = u.needs,
				troubleshooting_reason = u.reason, troubleshooting_details = u.details::jsonb,
				trouble_key = u.key, trouble_since = u.since, last_alert_at = u.last_alert,
				updated_at = $11
			FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::text[],
				$7::timestamptz[], $8::timestamptz[])
				AS u(id, del_id, needs, reason, details, key, since, last_alert)
			WHERE c.access_code_id = u.id AND c.deletion_state = 'awaiting_removal'
				AND c.trouble_key IS NULL AND c.deletion_event_id IS NOT DISTINCT FROM u.del_id
			RETURNING c.access_code_id
		), new_alerts AS (
			INSERT INTO alerts (alert_id, access_code_id, type, payload, created_at)
			SELECT a.id, a.code, a.type, a.payload::jsonb, $11
			FROM unnest($9::uuid[], $10::text[], $12::text[], $13::text[]) AS a(id, code, type, payload)
			WHERE a.code IN (SELECT access_code_id FROM flagged)
			RETURNING alert_id
		), deliveries AS (
			INSERT INTO alert_deliveries (alert_id, sink, next_attempt_at)
			SELECT a.alert_id, k, $11 FROM new_alerts a CROSS JOIN unnest($14::text[]) AS k
		)
		SELECT count(*) FROM flagged`,
		ids, delIDs, needs, reasons, details, keys, since, lastAlert,
		aIDs, aCodes, now, aTypes, aPayloads, s.cfg.Sinks).Scan(&flagged)
	if err != nil {
		return 0, 0, last, unavailable(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, last, unavailable(err)
	}
	return n, flagged, *rows[n-1].DeletedAt, nil
}

// remind queues a reminder for each row and restarts its reminder clock.
func (s *Store) remind(b *pgx.Batch, now time.Time, rows []*codeRow) {
	ids := make([]string, 0, len(rows))
	alerts := make([]*pendingAlert, 0, len(rows))
	for _, r := range rows {
		flag := &Flag{Reason: deref(r.TroubleshootingReason), Key: deref(r.troubleKey), Details: r.TroubleshootingDetails}
		alerts = append(alerts, s.newAlert(now, AlertReminder, rowState(r), flag, ""))
		ids = append(ids, r.AccessCodeID)
	}
	b.Queue(`UPDATE access_codes SET last_alert_at = $2 WHERE access_code_id = ANY($1)`, ids, now)
	s.queueAlerts(b, alerts)
}

// RunSweeper sweeps every interval until ctx ends, reporting each sweep that
// succeeded to observe (which may be nil).
func (s *Store) RunSweeper(ctx context.Context, interval, repeat time.Duration, observe func(SweepResult, time.Duration)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		res, err := s.Sweep(ctx, repeat)
		if err == nil && observe != nil {
			observe(res, time.Since(start))
		}
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("sweep failed", "error", err)
		case res.Overdue > 0 || res.Reminders > 0:
			s.cfg.Logger.Info("sweep", slog.Int("overdue", res.Overdue), slog.Int("reminders", res.Reminders))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
