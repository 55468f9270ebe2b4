package postgres

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/lifecycle"
)

// Issue 21, point 1: a staff code used at the lock every day, then deleted
// and still used, has thousands of unlocks on either side of its deletion.
// Refolding it for one more event reads its own events and a few of the
// lock's, whatever their number: each loader's generic plan (the one the
// service keeps) reads through an index, and run, no node reads more than
// a handful of rows.
func TestRefoldReadsWhatCanMatter(t *testing.T) {
	ctx := context.Background()
	pool := servicePool(t)
	s := retStore(t, pool, clocktest.New(time.Now()))

	const code, other, lock = "staff-code", "other-code", "the-lock"
	const before, after = 3000, 3000
	t0 := time.Now().Add(-100 * 24 * time.Hour)
	// The code's own events, then the lock's: unlocks naming it before and
	// after its deletion (on its lock, and a few on none), refusals, and
	// an unlock by its PIN that Seam tied to no code. Another code on the
	// lock has the same.
	if _, err := pool.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, access_code_id, device_id,
			occurred_at, raw, pin_hash)
		SELECT 'm-' || c || '-' || t || '-' || i, 'e-' || c || '-' || t || '-' || i, t, c, $3,
			$4::timestamptz + make_interval(mins => i), '\x00'::bytea,
			CASE WHEN t LIKE 'access_code.%' THEN '\x01'::bytea END
		FROM unnest(ARRAY[$1, $2]) AS c,
		LATERAL (VALUES ('access_code.created', 0), ('access_code.set_on_device', 1),
			('access_code.deleted', $5::int + 10)) AS o(t, i)
		UNION ALL
		SELECT 'm-' || c || '-u-' || i, 'e-' || c || '-u-' || i,
			CASE WHEN i % 50 = 0 THEN 'lock.access_denied' ELSE 'lock.unlocked' END, c,
			CASE WHEN i % 97 = 0 THEN NULL ELSE $3 END,
			$4::timestamptz + make_interval(mins => 2 + i + CASE WHEN i >= $5 THEN 20 ELSE 0 END), '\x00'::bytea, NULL
		FROM unnest(ARRAY[$1, $2]) AS c, generate_series(0, $5 + $6 - 1) AS i`,
		code, other, lock, t0, before, after); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	// Its row, as folded from them (replay reads everything).
	if _, err := s.Replay(ctx, 10, nil); err != nil {
		t.Fatal(err)
	}

	target := []string{code}
	for _, c := range []struct {
		name string
		sql  string
		args []any
		uses []string
	}{
		{"own events", loadOwnSQL, []any{target}, []string{"events_own_idx"}},
		{"the lock's events", loadLockSQL, []any{target}, []string{"events_own_idx", "events_unlock_idx"}},
		{"reports by PIN", loadRelevantPINReportsSQL, []any{target, []string{}}, []string{"events_pin_tokens_idx"}},
	} {
		plan, err := s.explainGeneric(ctx, c.sql, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Contains(plan, "Seq Scan on events")
		for _, u := range c.uses {
			bad = bad || !strings.Contains(plan, u)
		}
		if bad {
			t.Errorf("%s: want %v and no Seq Scan on events:\n%s", c.name, c.uses, plan)
		}
		analyzed := explainAnalyzeGeneric(t, pool, c.sql, c.args...)
		for _, m := range regexp.MustCompile(`(?m)^.*(Scan|Sort|Append)[^\n]*actual rows=(\d+) loops=(\d+)`).FindAllStringSubmatch(analyzed, -1) {
			rows, _ := strconv.Atoi(m[2])
			loops, _ := strconv.Atoi(m[3])
			if rows*loops > 40 {
				t.Errorf("%s: a node reads %d rows of a history of %d events:\n%s", c.name, rows*loops, before+after, analyzed)
				break
			}
		}
		if strings.Contains(analyzed, "Rows Removed by Filter") {
			for _, m := range regexp.MustCompile(`Rows Removed by Filter: (\d+)`).FindAllStringSubmatch(analyzed, -1) {
				if n, _ := strconv.Atoi(m[1]); n > 40 {
					t.Errorf("%s: a node filters out %d rows:\n%s", c.name, n, analyzed)
				}
			}
		}
	}

	// And what ingest reads folds as the whole history does: the newest
	// unlock is the evidence.
	evs := map[string][]lifecycle.Event{}
	b := &pgx.Batch{}
	queueLoadRelevant(b, target, nil, evs)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(evs[code]); n > 10 {
		t.Errorf("read %d events to refold, want its 3 own and the newest unlocks", n)
	}
	st := lifecycle.Fold(evs[code])
	want := "e-" + code + "-u-" + strconv.Itoa(before+after-1)
	if st.LockEvidence == nil || st.LockEvidence.EventID != want {
		t.Fatalf("evidence %+v, want the newest unlock %s (read %v)", st.LockEvidence, want, evs[code])
	}
}

// explainAnalyzeGeneric runs query's generic plan under EXPLAIN ANALYZE.
func explainAnalyzeGeneric(t *testing.T, pool *pgxpool.Pool, query string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "PREPARE codewatch_analyze AS "+query); err != nil {
		t.Fatal(err)
	}
	// A prepared statement outlives the transaction (and the pool keeps
	// the connection): deallocated before the rollback.
	defer tx.Exec(ctx, "DEALLOCATE codewatch_analyze") //nolint:errcheck // read only
	ph := make([]string, len(args))
	for i := range args {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	rs, err := tx.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE codewatch_analyze("+strings.Join(ph, ", ")+")",
		append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
