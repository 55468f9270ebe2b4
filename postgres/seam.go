package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/lifecycle"
)

// Record stores events codewatch made or fetched from Seam's API
// (lifecycle.OwnEvent; Seam events read from events/list) through the same
// path as webhooks, in one transaction that also inserts jobs: the deletion
// request and the job that follows its action attempt commit together or
// not at all. Like Ingest, an event already stored is a duplicate.
func (s *Store) Record(ctx context.Context, ds []lifecycle.Delivery, jobs []river.InsertManyParams) ([]lifecycle.Result, error) {
	if s.cfg.Keys == nil {
		return nil, errNoKeys
	}
	reqs := make([]*request, len(ds))
	for i, d := range ds {
		r, err := newRequest(d)
		if err != nil {
			return nil, err
		}
		s.prepare(r) // sealed, PIN hashed, like a webhook
		reqs[i] = r
	}
	var results map[*request]lifecycle.Result
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		results, err = s.recordTx(ctx, reqs, jobs)
		if err == nil || !retryable(err) {
			break
		}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]lifecycle.Result, len(reqs))
	for i, r := range reqs {
		out[i] = results[r]
	}
	return out, nil
}

func (s *Store) recordTx(ctx context.Context, reqs []*request, jobs []river.InsertManyParams) (map[*request]lifecycle.Result, error) {
	var results map[*request]lifecycle.Result
	var flags []string
	// Errors as they are: Record retries what is worth it (retryable).
	err := s.runTx(ctx, s.cfg.TxTimeout, func(err error) error { return err }, func(ctx context.Context, tx pgx.Tx) error {
		var final *pgx.Batch
		var err error
		results, final, flags, err = s.ingestIn(ctx, tx, reqs, nil)
		if err != nil {
			return err
		}
		if len(jobs) > 0 {
			if _, err := s.jobs.InsertManyTx(ctx, tx, jobs); err != nil {
				return err
			}
		}
		return send(ctx, tx, final)
	})
	if err != nil {
		return nil, err
	}
	s.reportFlags(flags)
	return results, nil
}

// DueForReconcile returns up to limit codes whose next lookup in Seam's API
// is due at now, the most overdue first (access_codes_reconcile_idx).
func (s *Store) DueForReconcile(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	return queryIDs(ctx, s.pool, `SELECT access_code_id FROM access_codes
		WHERE next_reconcile_at IS NOT NULL AND next_reconcile_at <= $1
		ORDER BY next_reconcile_at LIMIT $2`, customPlan, now, limit)
}

// UnconfirmedCodes returns up to limit codes whose deletion is unconfirmed,
// after the code id after, in id order: every code `codewatch reconcile`
// looks up when given none.
func (s *Store) UnconfirmedCodes(ctx context.Context, after string, limit int) ([]string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	// Few rows: access_codes_unconfirmed_since_idx finds them, a sort
	// orders them.
	return queryIDs(ctx, s.pool, `SELECT access_code_id FROM access_codes
		WHERE `+unconfirmedSQL+` AND access_code_id > $1
		ORDER BY access_code_id LIMIT $2`, customPlan, after, limit)
}

// NewestWebhookEvent returns the point Seam's webhooks had reached: the
// newest occurred_at among the last webhooks received, or nil when none is
// among the newest stored events. The start-up backfill reads from shortly
// before it. Only source 'webhook' counts: codewatch's own events carry its
// poll times and backfilled ones prove nothing about what came before them
// (seamsync.StartupBackfill says why).
func (s *Store) NewestWebhookEvent(ctx context.Context) (*time.Time, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var t *time.Time
	// The newest rows by primary key are the newest received (the backward
	// scan of events_pkey stops at the first 1000 webhooks, or after
	// 100000 rows of any source: no webhook among those is a long outage,
	// answered nil, the whole bound). Each row counts at most from its
	// receipt, so an occurred_at in the future (a skewed or hostile clock)
	// cannot hide the time since (LEAST skips a NULL occurred_at).
	err := s.pool.QueryRow(ctx, `SELECT max(LEAST(occurred_at, received_at)) FROM
		(SELECT occurred_at, received_at FROM
			(SELECT occurred_at, received_at, source FROM events ORDER BY id DESC LIMIT 100000) recent
		WHERE source = 'webhook' LIMIT 1000) t`).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return t, nil
}
