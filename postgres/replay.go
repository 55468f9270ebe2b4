package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// ReplayProgress reports a replay's advance.
type ReplayProgress struct {
	Done, Total, Changed int
}

// Replay recomputes every code's row from its stored events, in batches of
// batchSize codes, each in its own transaction under the same row locks as
// ingest, so it is safe while the service runs. It creates rows for codes
// whose events predate them, and queues the alerts a changed rule calls for.
func (s *Store) Replay(ctx context.Context, batchSize int, progress func(ReplayProgress)) (ReplayProgress, error) {
	var p ReplayProgress
	if batchSize <= 0 {
		batchSize = 500
	}
	qctx, cancel := s.timeout(ctx)
	defer cancel()
	if err := s.pool.QueryRow(qctx, `SELECT count(DISTINCT access_code_id) FROM events
		WHERE access_code_id IS NOT NULL AND `+historySQL+` AND `+ownEventSQL).Scan(&p.Total); err != nil {
		return p, unavailable(err)
	}
	last := ""
	for {
		ids, err := s.replayIDs(ctx, last, batchSize)
		if err != nil {
			return p, err
		}
		if len(ids) == 0 {
			return p, nil
		}
		changed, err := s.replayBatch(ctx, ids)
		if err != nil {
			return p, err
		}
		p.Done += len(ids)
		p.Changed += changed
		last = ids[len(ids)-1]
		if progress != nil {
			progress(p)
		}
	}
}

// ownEventSQL keeps a code's own events (not a lock's): only they make a
// code's row. Beside historySQL, it keeps events_access_code_idx usable.
const ownEventSQL = `event_type NOT IN ('lock.unlocked', 'lock.access_denied')`

// replayIDs returns the next batchSize codes with events, after last.
func (s *Store) replayIDs(ctx context.Context, last string, batchSize int) ([]string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	// Served by events_access_code_idx, whose predicate this repeats.
	return queryIDs(ctx, s.pool, `SELECT DISTINCT access_code_id FROM events
		WHERE access_code_id IS NOT NULL AND `+historySQL+` AND `+ownEventSQL+`
			AND access_code_id > $1
		ORDER BY 1 LIMIT $2`, customPlan, last, batchSize)
}

func (s *Store) replayBatch(ctx context.Context, ids []string) (int, error) {
	now := s.cfg.Now()
	changed := 0
	var flags []string
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rows := map[string]*codeRow{}
		evs := map[string][]lifecycle.Event{}
		b := &pgx.Batch{}
		queueLockCodes(b, ids, nil, rows)
		queueLoadEvents(b, ids, evs)
		queueLoadPINReports(b, ids, evs)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return unavailable(err)
		}
		list := make([]*codeRow, 0, len(rows))
		for _, r := range rows {
			list = append(list, r)
		}
		locks, err := s.locksOf(ctx, tx, devicesOf(list))
		if err != nil {
			return unavailable(err)
		}
		changes := s.recompute(now, rows, evs, locks, nil)
		for _, c := range changes {
			if c.old.DeletionState != c.st.DeletionState || c.old.NeedsTroubleshooting != c.needs {
				changed++
			}
		}
		final, fl, err := s.writeChanges(ctx, tx, now, changes)
		if err == nil {
			err = send(ctx, tx, final)
		}
		if err != nil {
			return unavailable(err)
		}
		flags = fl
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.reportFlags(flags)
	return changed, nil
}
