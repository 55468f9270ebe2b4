package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// pruneBatch is small so each prune transaction holds few locks briefly and
// never stalls ingest.
const pruneBatch = 200

// The prune statements. Each repeats the predicate of the partial index it
// must use (the planner matches predicates, not intent); retention_test
// checks their plans with EXPLAIN.
const (
	// events_access_code_idx: a pruned code's history.
	pruneCodeEventsSQL = `DELETE FROM events
		WHERE access_code_id = ANY($1) AND access_code_id IS NOT NULL AND ` + historySQL
	// events_code_other_idx: other events that name a pruned code.
	pruneCodeOtherSQL = `DELETE FROM events
		WHERE access_code_id = ANY($1) AND access_code_id IS NOT NULL AND NOT ` + ownSQL
	pruneAlertsSQL = `DELETE FROM alerts WHERE access_code_id = ANY($1)`
	pruneCodesSQL  = `DELETE FROM access_codes WHERE access_code_id = ANY($1)`
	// events_unowned_received_idx: events in no code's history that
	// arrived before the horizon, unless they name a code still kept.
	pruneUnownedSQL = `DELETE FROM events WHERE id IN (
		SELECT e.id FROM events e
		WHERE (e.access_code_id IS NULL OR NOT ` + ownSQL + `) AND e.received_at < $1
			AND NOT EXISTS (SELECT 1 FROM access_codes c WHERE c.access_code_id = e.access_code_id)
		ORDER BY e.received_at LIMIT $2)`
	// quarantine_received_idx.
	pruneQuarantineSQL = `DELETE FROM quarantine WHERE id IN (
		SELECT id FROM quarantine WHERE received_at < $1 ORDER BY received_at LIMIT $2)`
)

// Prune deletes what is older than retention, one small batch per
// transaction: the events, alerts and rows of codes terminal for longer,
// events in no code's history and quarantined deliveries received before
// then. Codes still open are never touched. It stops after budget (0: no
// limit) so that one run stays short; the next continues. deleted reports
// counts per table as it goes. It returns whether work is left.
func (s *Store) Prune(ctx context.Context, retention, budget time.Duration, deleted func(table string, n int64)) (more bool, err error) {
	if retention <= 0 {
		return false, nil
	}
	start := time.Now()
	cutoff := s.cfg.Now().Add(-retention)
	for _, step := range []func(context.Context, time.Time, func(string, int64)) (int, error){
		s.pruneCodes, s.pruneUnowned, s.pruneQuarantine,
	} {
		for {
			if budget > 0 && time.Since(start) > budget {
				return true, nil
			}
			n, err := step(ctx, cutoff, deleted)
			if err != nil {
				return false, err
			}
			if n < pruneBatch {
				break
			}
		}
	}
	return false, nil
}

func (s *Store) pruneCodes(ctx context.Context, cutoff time.Time, deleted func(string, int64)) (int, error) {
	var ids []string
	counts := map[string]int64{}
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// SKIP LOCKED: a code being ingested right now is left for next time.
		// Ingest notices a row deleted under it and retries (errRowVanished).
		// A terminal code can still need troubleshooting (its lock reported it
		// after its deletion): kept until someone acknowledges.
		var err error
		ids, err = queryIDs(ctx, tx, `SELECT access_code_id FROM access_codes
		WHERE terminal_at < $1 AND NOT needs_troubleshooting
		ORDER BY terminal_at LIMIT $2 FOR UPDATE SKIP LOCKED`, customPlan, cutoff, pruneBatch)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return errRollback
		}
		for _, q := range []struct{ table, sql string }{
			{"events", pruneCodeEventsSQL},
			{"events", pruneCodeOtherSQL},
			{"alerts", pruneAlertsSQL},
			{"access_codes", pruneCodesSQL},
		} {
			tag, err := tx.Exec(ctx, q.sql, ids)
			if err != nil {
				return unavailable(err)
			}
			counts[q.table] += tag.RowsAffected()
		}
		return nil
	})
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	report(deleted, counts)
	return len(ids), nil
}

func (s *Store) pruneUnowned(ctx context.Context, cutoff time.Time, deleted func(string, int64)) (int, error) {
	return s.pruneBy(ctx, "events", pruneUnownedSQL, cutoff, deleted)
}

func (s *Store) pruneQuarantine(ctx context.Context, cutoff time.Time, deleted func(string, int64)) (int, error) {
	return s.pruneBy(ctx, "quarantine", pruneQuarantineSQL, cutoff, deleted)
}

func (s *Store) pruneBy(ctx context.Context, table, sql string, cutoff time.Time, deleted func(string, int64)) (int, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, sql, customPlan, cutoff, pruneBatch)
	if err != nil {
		return 0, unavailable(err)
	}
	report(deleted, map[string]int64{table: tag.RowsAffected()})
	return int(tag.RowsAffected()), nil
}

func report(deleted func(string, int64), counts map[string]int64) {
	if deleted == nil {
		return
	}
	for t, n := range counts {
		if n > 0 {
			deleted(t, n)
		}
	}
}
