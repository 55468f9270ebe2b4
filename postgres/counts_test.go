package postgres_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// summaryCounts is what the summary counts, as maps for comparison.
type summaryCounts struct {
	States  map[lifecycle.DeletionState]int64
	Reasons map[string]int64
	Total   int64
	Needs   int64
}

// countCodes counts access_codes directly: the oracle the summary's
// maintained counts must equal.
func (e *swEnv) countCodes() summaryCounts {
	e.t.Helper()
	c := summaryCounts{States: map[lifecycle.DeletionState]int64{}, Reasons: map[string]int64{}}
	for _, st := range lifecycle.States {
		c.States[st] = 0
	}
	for _, r := range lifecycle.Reasons {
		c.Reasons[r] = 0
	}
	rs, err := e.pool.Query(e.ctx, `SELECT deletion_state, needs_troubleshooting, troubleshooting_reason, count(*)
		FROM access_codes GROUP BY 1, 2, 3`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var st string
		var needs bool
		var reason *string
		var n int64
		if err := rs.Scan(&st, &needs, &reason, &n); err != nil {
			e.t.Fatal(err)
		}
		c.States[lifecycle.DeletionState(st)] += n
		c.Total += n
		if needs {
			c.Needs += n
			c.Reasons[*reason] += n
		}
	}
	if err := rs.Err(); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *swEnv) summaryCounts() summaryCounts {
	e.t.Helper()
	s, err := e.store.Summarize(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return summaryCounts{States: s.DeletionStates, Reasons: s.ByReason, Total: s.Total, Needs: s.NeedsTroubleshooting}
}

// checkCounts requires the summary's counts to equal a count of the codes.
func (e *swEnv) checkCounts(when string) {
	e.t.Helper()
	want, got := e.countCodes(), e.summaryCounts()
	if !maps.Equal(got.States, want.States) || !maps.Equal(got.Reasons, want.Reasons) || got.Total != want.Total || got.Needs != want.Needs {
		e.t.Fatalf("%s: summary counts\n%+v\nwant (counted)\n%+v", when, got, want)
	}
}

func (e *swEnv) compact() int64 {
	e.t.Helper()
	n, err := e.store.CompactCounts(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// The summary's counts are kept by a trigger (migration 00009), not
// counted: whatever writes access_codes (ingest, the sweeper,
// acknowledgement, replay, retention, a hand-made UPDATE, DELETE or
// TRUNCATE), they equal a count of the codes, before and after the changes
// are folded.
func TestSummaryCountsFollowEveryWrite(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	t0 := e.clock.Now()
	e.checkCounts("empty")
	var codes []string
	for i := range 12 {
		code := fmt.Sprintf("count-%02d-%s", i, seamevent.NewID()[:8])
		codes = append(codes, code)
		e.send(lifecycle.TypeCreated, code, t0.Add(-3*time.Hour))
		e.send(lifecycle.TypeSetOnDevice, code, t0.Add(-3*time.Hour+time.Minute))
	}
	e.checkCounts("active")
	// Deleted: awaiting removal; removed; delayed and failed (in trouble at
	// once); deleted long ago (overdue on arrival).
	for i, code := range codes[:10] {
		e.send(lifecycle.TypeDeleted, code, t0.Add(-time.Duration(10-i)*time.Minute))
	}
	e.send(lifecycle.TypeRemovedFromDevice, codes[0], t0)
	e.send(lifecycle.TypeDelayInRemoving, codes[1], t0)
	e.send(lifecycle.TypeFailedToRemove, codes[2], t0)
	e.send(lifecycle.TypeDeleted, codes[10], t0.Add(-2*time.Hour))
	e.checkCounts("deleted")
	if n := e.compact(); n == 0 {
		t.Fatal("nothing folded after changes")
	}
	e.checkCounts("folded")
	if n := e.compact(); n > int64(len(lifecycle.States)*(1+len(lifecycle.Reasons))) {
		t.Fatalf("a fold with no change in between read %d rows: more than one per key", n)
	}
	// The sweeper flags overdue deletions; a removal resolves one; the lock
	// reports a removed code used.
	e.clock.Advance(time.Hour)
	if res := e.sweep(0); res.Overdue == 0 {
		t.Fatalf("sweep flagged nothing: %+v", res)
	}
	e.checkCounts("swept")
	e.send(lifecycle.TypeRemovedFromDevice, codes[3], e.clock.Now())
	e.send(lifecycle.TypeLockUnlocked, codes[0], e.clock.Now())
	e.checkCounts("removed and used")
	// Acknowledgement clears the flag, keeping the reason.
	if _, changed, err := e.store.Acknowledge(e.ctx, codes[2], "ops", "replaced the lock", ""); err != nil || !changed {
		t.Fatalf("acknowledge: %v %v", changed, err)
	}
	e.checkCounts("acknowledged")
	// Replay after damage done by hand.
	if _, err := e.pool.Exec(e.ctx, `UPDATE access_codes SET deletion_state = 'active', needs_troubleshooting = false`); err != nil {
		t.Fatal(err)
	}
	e.checkCounts("damaged")
	if _, err := e.store.Replay(e.ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
	e.checkCounts("replayed")
	e.compact()
	// Retention deletes codes; so may a person.
	if _, err := e.pool.Exec(e.ctx, `DELETE FROM access_codes WHERE access_code_id = ANY($1)`, codes[:2]); err != nil {
		t.Fatal(err)
	}
	e.checkCounts("deleted rows")
	if _, err := e.pool.Exec(e.ctx, `TRUNCATE access_codes, alert_deliveries, alerts`); err != nil {
		t.Fatal(err)
	}
	e.checkCounts("truncated")
	e.send(lifecycle.TypeCreated, codes[5], e.clock.Now())
	e.checkCounts("after truncate")
}

// Concurrent ingest and folds: no change is lost or counted twice, and no
// writer waits on another because of the counts (a rolled-back change is
// not counted).
func TestSummaryCountsUnderConcurrentIngestAndFolds(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	t0 := e.clock.Now()
	ctx, cancel := context.WithCancel(e.ctx)
	var folds sync.WaitGroup
	for range 2 {
		folds.Go(func() {
			for ctx.Err() == nil {
				if _, err := e.store.CompactCounts(ctx); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var ingest sync.WaitGroup
	for w := range 6 {
		ingest.Go(func() {
			for i := range 15 {
				code := fmt.Sprintf("conc-%d-%02d-%s", w, i, seamevent.NewID()[:6])
				types := []string{lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted}
				switch i % 3 {
				case 0:
					types = append(types, lifecycle.TypeRemovedFromDevice)
				case 1:
					types = append(types, lifecycle.TypeFailedToRemove)
				}
				for j, typ := range types {
					body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, OccurredAt: t0.Add(time.Duration(j) * time.Second)})
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	// A transaction that changes codes and rolls back.
	tx, err := e.pool.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `INSERT INTO access_codes (access_code_id) SELECT 'rolled-back-' || g FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	ingest.Wait()
	if err := tx.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	folds.Wait()
	e.checkCounts("after concurrent ingest and folds")
	if got := e.countCodes(); got.Total != 6*15 || got.States[lifecycle.Removed] != 6*5 || got.Reasons[lifecycle.ReasonFailed] != 6*5 {
		t.Fatalf("counted %+v", got)
	}
	e.compact()
	e.checkCounts("folded")
}
