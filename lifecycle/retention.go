package lifecycle

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// pruneBatch is small so each prune transaction holds few locks briefly and
// never stalls ingest.
const pruneBatch = 200

// Prune deletes the events, alerts and rows of codes that reached a terminal
// state more than retention ago, one small batch per transaction, until none
// are left. Codes still open are never touched. deleted reports counts per
// table as it goes.
func (s *Store) Prune(ctx context.Context, retention time.Duration, deleted func(table string, n int64)) error {
	if retention <= 0 {
		return nil
	}
	for {
		n, err := s.pruneTx(ctx, s.cfg.Now().Add(-retention), deleted)
		if err != nil || n < pruneBatch {
			return err
		}
	}
}

func (s *Store) pruneTx(ctx context.Context, cutoff time.Time, deleted func(string, int64)) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, unavailable(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	// SKIP LOCKED: a code being ingested right now is left for next time.
	// Ingest notices a row deleted under it and retries (errRowVanished).
	rs, err := tx.Query(ctx, `SELECT access_code_id FROM access_codes
		WHERE terminal_at < $1 ORDER BY terminal_at LIMIT $2 FOR UPDATE SKIP LOCKED`, cutoff, pruneBatch)
	if err != nil {
		return 0, unavailable(err)
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return 0, unavailable(err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	counts := map[string]int64{}
	for _, q := range []struct{ table, sql string }{
		{"events", `DELETE FROM events WHERE access_code_id = ANY($1)`},
		{"alerts", `DELETE FROM alerts WHERE access_code_id = ANY($1)`},
		{"access_codes", `DELETE FROM access_codes WHERE access_code_id = ANY($1)`},
	} {
		tag, err := tx.Exec(ctx, q.sql, ids)
		if err != nil {
			return 0, unavailable(err)
		}
		counts[q.table] = tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, unavailable(err)
	}
	if deleted != nil {
		for t, n := range counts {
			deleted(t, n)
		}
	}
	return len(ids), nil
}

// RunRetention prunes every interval until ctx ends.
func (s *Store) RunRetention(ctx context.Context, retention, interval time.Duration, deleted func(string, int64)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Prune(ctx, retention, deleted); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("retention prune failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
