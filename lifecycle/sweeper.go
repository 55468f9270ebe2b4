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

// sweepBatch bounds the rows one sweep transaction locks.
const sweepBatch = 1000

// Sweep flags deletions that have awaited removal longer than the removal
// timeout, and queues reminders for trouble unresolved longer than repeat
// (0: no reminders). Replicas may sweep at once: rows are claimed with
// FOR UPDATE SKIP LOCKED, and the WHERE clause is checked again on a row that
// another sweeper changed, so each code is flagged and alerted once.
func (s *Store) Sweep(ctx context.Context, repeat time.Duration) (SweepResult, error) {
	var res SweepResult
	now := s.cfg.Now()
	if s.cfg.RemovalTimeout > 0 {
		cutoff := OverdueCutoff(now, s.cfg.RemovalTimeout)
		for {
			n, err := s.sweepTx(ctx, now, `SELECT `+codeColumns+` FROM access_codes
				WHERE deletion_state = 'awaiting_removal' AND trouble_key IS NULL
					AND deleted_at < $1
				ORDER BY deleted_at LIMIT $2
				FOR UPDATE SKIP LOCKED`, cutoff, s.overdue)
			res.Overdue += n
			if err != nil {
				return res, err
			}
			if n < sweepBatch {
				break
			}
		}
	}
	if repeat > 0 {
		cutoff := now.Add(-repeat)
		for {
			n, err := s.sweepTx(ctx, now, `SELECT `+codeColumns+` FROM access_codes
				WHERE needs_troubleshooting AND last_alert_at < $1
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

// overdue applies the same rules as ingest to rows still awaiting removal;
// their fold has not changed, only the time.
func (s *Store) overdue(b *pgx.Batch, now time.Time, rows []*codeRow) {
	changes := make([]change, 0, len(rows))
	for _, r := range rows {
		st := rowState(r)
		flag := Assess(st.Summary(), now, s.cfg.RemovalTimeout)
		changes = append(changes, s.decide(now, r, st, flag))
	}
	s.queueWrite(b, now, changes)
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

// RunSweeper sweeps every interval until ctx ends.
func (s *Store) RunSweeper(ctx context.Context, interval, repeat time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := s.Sweep(ctx, repeat)
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
