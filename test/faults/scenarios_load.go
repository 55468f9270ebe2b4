package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Faults of load: waves far past the database pool while the ops API is
// flooded, and a burst at ten times the rate (memory must come back down).

func poolScenario() *scenario {
	return &scenario{
		key: "pool", title: fmt.Sprintf("pool exhausted (waves far past CODEWATCH_DB_MAX_CONNS=%d, ops API flooded)", dbMaxConns),
		extraSlots: func(p *params, start time.Time) []time.Time {
			var out []time.Time
			for _, at := range waveTimes(p, start) {
				out = append(out, wave(at, p.WaveSize)...)
			}
			return out
		},
		inject: poolFlood,
	}
}

func waveTimes(p *params, start time.Time) []time.Time {
	out := make([]time.Time, p.Waves)
	// Waves a second or two apart, in the middle of the load.
	first := start.Add(p.Load / 4)
	gap := p.Load / 2 / time.Duration(p.Waves)
	for i := range out {
		out[i] = first.Add(gap * time.Duration(i))
	}
	return out
}

// poolFlood floods the ops API during the waves (every reader holds a pool
// connection while its query runs) and samples the database's connections.
func poolFlood(ctx context.Context, x *runCtx) error {
	waves := waveTimes(x.p, x.start)
	from, until := waves[0].Add(-time.Second), waves[len(waves)-1].Add(2*time.Second)
	if err := sleepUntil(ctx, from); err != nil {
		return err
	}
	client := &http.Client{Timeout: svixTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var mu sync.Mutex
	statuses := map[int]int{}
	errs, hung := 0, 0
	var wg sync.WaitGroup
	paths := []string{"/v1/summary", "/v1/access_codes?limit=100", "/readyz"}
	for i := 0; i < x.p.OpsReaders; i++ {
		wg.Go(func() {
			for n := 0; time.Now().Before(until) && ctx.Err() == nil && n < 100000; n++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+x.h.opsAddr+paths[(i+n)%len(paths)], nil)
				req.Header.Set("Authorization", "Bearer "+tokenValue(x.h.opsToken))
				t0 := time.Now()
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					errs++
					if time.Since(t0) >= svixTimeout-100*time.Millisecond {
						hung++
					}
				} else {
					statuses[resp.StatusCode]++
					resp.Body.Close()
				}
				mu.Unlock()
			}
		})
	}
	// Sample how many connections codewatch holds on its database (from
	// pg_stat_activity, not the domain's tables: the SQL stays here).
	maxConns := 0
	if conn, err := pgx.Connect(ctx, x.h.pg.URL("postgres")); err == nil {
		for i := 0; time.Now().Before(until) && i < 10000; i++ {
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, x.dbName).Scan(&n); err == nil && n > maxConns {
				maxConns = n
			}
			time.Sleep(50 * time.Millisecond)
		}
		conn.Close(context.Background())
	}
	wg.Wait()
	x.faultEnded(time.Now())
	x.res.note("pool: up to %d webhook requests in flight at once, codewatch held up to %d connections (CODEWATCH_DB_MAX_CONNS=%d)",
		x.drv.maxIn.Load(), maxConns, dbMaxConns)
	x.res.note("pool: ops API answers during the flood: %s, %d without an answer", fmtStatuses(statuses), errs)
	for st, n := range statuses {
		if st != http.StatusOK && st != http.StatusServiceUnavailable {
			x.res.fail("pool: ops API answered %d %d times during the flood (want 200 or 503)", st, n)
		}
	}
	if hung > 0 {
		x.res.fail("pool: %d ops API requests hung past %s", hung, svixTimeout)
	}
	return nil
}

func tokenValue(tok string) string {
	for i := 0; i < len(tok); i++ {
		if tok[i] == ':' {
			return tok[i+1:]
		}
	}
	return tok
}

func burstScenario() *scenario {
	return &scenario{
		key: "burst", title: "burst at 10x the rate",
		extraSlots: func(p *params, start time.Time) []time.Time {
			b0 := burstStart(p, start)
			return uniformSlots(b0, p.BurstLen, p.Rate*(p.BurstFactor-1))
		},
		inject: burstWatch,
		after:  rssSettle,
	}
}

func burstStart(p *params, start time.Time) time.Time { return start.Add(p.Load * 2 / 5) }

// rssMinSettle is how long after the burst's connections close the RSS is
// first compared with the bound.
const rssMinSettle = 5 * time.Second

// rssBound is how far above its pre-burst baseline codewatch's RSS may stay.
func rssBound(baseline int64) int64 { return baseline*3/2 + 16<<20 }

// burstWatch samples codewatch's RSS before and during the burst.
func burstWatch(ctx context.Context, x *runCtx) error {
	b0 := burstStart(x.p, x.start)
	if err := sleepUntil(ctx, b0.Add(-1500*time.Millisecond)); err != nil {
		return err
	}
	var base []int64
	for i := 0; i < 3; i++ {
		if v, err := x.svc().rss(); err == nil {
			base = append(base, v)
		}
		time.Sleep(450 * time.Millisecond)
	}
	if len(base) == 0 {
		return fmt.Errorf("cannot read codewatch's RSS")
	}
	sort.Slice(base, func(i, j int) bool { return base[i] < base[j] })
	x.rss.baseline = base[len(base)/2]
	x.res.note("burst: before: RSS %s; %s", mib(x.rss.baseline), runtimeFigures(x))
	end := b0.Add(x.p.BurstLen)
	for i := 0; time.Now().Before(end.Add(5*time.Second)) && i < 10000; i++ {
		if v, err := x.svc().rss(); err == nil && v > x.rss.peak {
			x.rss.peak = v
		}
		if err := sleepUntil(ctx, time.Now().Add(200*time.Millisecond)); err != nil {
			return err
		}
	}
	x.res.note("burst: just after: RSS %s (peak %s); %s", mib(x.rss.peak), mib(x.rss.peak), runtimeFigures(x))
	x.faultEnded(end)
	return nil
}

// rssSettle waits, bounded, for the RSS to come back within rssBound.
func rssSettle(ctx context.Context, x *runCtx) error {
	if x.rss.baseline == 0 {
		return nil
	}
	bound := rssBound(x.rss.baseline)
	// The burst's connections are the sender's to close: it keeps them
	// idle for reuse, and codewatch's server keeps each one's goroutine
	// and buffers until then (or its IdleTimeout).
	x.drv.closeIdle()
	t0 := time.Now()
	for {
		v, err := x.svc().rss()
		if err != nil {
			return err
		}
		x.rss.after = v
		if x.h.verbose {
			x.res.note("burst: settling %s: RSS %s; %s", time.Since(t0).Round(time.Second), mib(v), runtimeFigures(x))
		}
		if v < bound && time.Since(t0) >= rssMinSettle {
			x.rss.settled = time.Since(t0)
			break
		}
		if time.Since(t0) > x.p.RSSSettle {
			x.res.fail("burst: RSS %s after %s of settling, bound %s (baseline %s, peak %s)",
				mib(v), x.p.RSSSettle, mib(bound), mib(x.rss.baseline), mib(x.rss.peak))
			break
		}
		if err := sleepUntil(ctx, time.Now().Add(time.Second)); err != nil {
			return err
		}
	}
	x.res.note("burst: RSS baseline %s, peak %s, %s after the burst's connections closed %s (bound %s); %s",
		mib(x.rss.baseline), mib(x.rss.peak), time.Since(t0).Round(time.Second), mib(x.rss.after), mib(bound), runtimeFigures(x))
	return nil
}

// runtimeFigures reads the Go runtime's view of codewatch's memory from its
// /metrics, to tell heap kept from heap in use, stacks and connections.
func runtimeFigures(x *runCtx) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + x.h.opsAddr + "/metrics")
	if err != nil {
		return "metrics: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	want := []struct{ name, label string }{
		{"go_memstats_heap_inuse_bytes", "heap in use"},
		{"go_memstats_heap_idle_bytes", "heap idle"},
		{"go_memstats_heap_released_bytes", "released"},
		{"go_memstats_stack_inuse_bytes", "stacks"},
		{"go_goroutines", "goroutines"},
		{"process_open_fds", "open fds"},
	}
	var parts []string
	for _, w := range want {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, w.name+" "); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if strings.HasSuffix(w.name, "_bytes") {
					parts = append(parts, w.label+" "+mib(int64(f)))
				} else {
					parts = append(parts, fmt.Sprintf("%s %.0f", w.label, f))
				}
			}
		}
	}
	return strings.Join(parts, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
