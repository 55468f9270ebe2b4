package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// params size a run; -short picks the CI sizes.
type params struct {
	Rate        float64       // messages per second, normal load
	Load        time.Duration // how long each scenario's load lasts
	Injections  int           // faults per scenario (kill, stop, crash, SIGTERM, read-only)
	Budget      time.Duration // a message is given up this long after its scheduled send
	KillPause   time.Duration // codewatch down after kill -9
	PGStopPause time.Duration // Postgres down after a fast shutdown
	PGKillPause time.Duration // Postgres down after SIGKILL
	TermPause   time.Duration // codewatch down after SIGTERM
	ROPause     time.Duration // Postgres read-only
	DiskPause   time.Duration // the database's disk full
	FreezePause time.Duration // Postgres frozen with SIGSTOP
	FaultWave   int           // messages sent at once as each fault strikes
	BurstFactor float64
	BurstLen    time.Duration
	Waves       int // pool exhaustion: this many waves ...
	WaveSize    int // ... of this many messages at one instant ...
	OpsReaders  int // ... while this many clients read the ops API
	AlertDrain  time.Duration
	RSSSettle   time.Duration
}

var shortParams = params{
	Rate: 40, Load: 8 * time.Second, Injections: 1, Budget: 60 * time.Second,
	KillPause: 1500 * time.Millisecond, PGStopPause: 3 * time.Second, PGKillPause: 2 * time.Second,
	TermPause: time.Second, ROPause: 3 * time.Second, DiskPause: 3 * time.Second,
	FreezePause: 16 * time.Second,
	BurstFactor: 10, BurstLen: 3 * time.Second, FaultWave: 30,
	Waves: 2, WaveSize: 200, OpsReaders: 24,
	AlertDrain: 150 * time.Second, RSSSettle: 30 * time.Second,
}

var fullParams = params{
	Rate: 100, Load: 45 * time.Second, Injections: 3, Budget: 90 * time.Second,
	KillPause: 2 * time.Second, PGStopPause: 5 * time.Second, PGKillPause: 3 * time.Second,
	TermPause: 2 * time.Second, ROPause: 5 * time.Second, DiskPause: 5 * time.Second,
	FreezePause: 16 * time.Second,
	BurstFactor: 10, BurstLen: 5 * time.Second, FaultWave: 60,
	Waves: 4, WaveSize: 400, OpsReaders: 48,
	AlertDrain: 150 * time.Second, RSSSettle: 45 * time.Second,
}

// scenario is one fault under load.
type scenario struct {
	key   string
	title string
	// crashy: the fault can interrupt an alert delivery between sending
	// it and recording it, so its documented at-least-once repeat (same
	// alert_id, once River rescues or retries the job) may happen.
	crashy bool
	// extraSlots adds send instants to the normal load.
	extraSlots func(p *params, start time.Time) []time.Time
	// inject runs the faults during the load and returns when they are over.
	inject func(ctx context.Context, x *runCtx) error
	// prepare runs before the database is created; it names the database's
	// tablespace, or says why the scenario cannot run here.
	prepare func(ctx context.Context, h *harness) (tablespace, skip string, err error)
	// tune adjusts the run's parameters for this scenario.
	tune func(p params) params
	// after runs once the load is delivered, before the checks.
	after func(ctx context.Context, x *runCtx) error
}

// runCtx is one scenario run in progress.
type runCtx struct {
	h       *harness
	p       *params
	sc      *scenario
	res     *result
	dbURL   string
	dbName  string
	logName string
	start   time.Time
	drv     *driver

	mu        sync.Mutex
	faultEnds []time.Time
	rss       rssFigures
}

type rssFigures struct {
	baseline, peak, after int64
	settled               time.Duration
}

func (x *runCtx) faultEnded(t time.Time) {
	x.mu.Lock()
	x.faultEnds = append(x.faultEnds, t)
	x.mu.Unlock()
}

func (x *runCtx) svc() *service {
	x.h.mu.Lock()
	defer x.h.mu.Unlock()
	return x.h.svc
}

func sleepUntil(ctx context.Context, t time.Time) error {
	w := time.Until(t)
	if w <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(w)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// faultTimes spreads n faults of length pause over the load.
func faultTimes(p *params, start time.Time, pause time.Duration) []time.Time {
	n := p.Injections
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(p.Load*time.Duration(i+1)/time.Duration(n+1) - pause/2)
	}
	return out
}

// faultWaves sends a wave of messages at each fault time, so that every
// fault lands on many requests in progress (some mid-commit).
func faultWaves(pause func(p *params) time.Duration) func(p *params, start time.Time) []time.Time {
	return func(p *params, start time.Time) []time.Time {
		var out []time.Time
		for _, at := range faultTimes(p, start, pause(p)) {
			out = append(out, wave(at, p.FaultWave)...)
		}
		return out
	}
}

// strike waits until the fault's wave is in flight (bounded), then returns.
func strike(ctx context.Context, x *runCtx, at time.Time) error {
	if err := sleepUntil(ctx, at); err != nil {
		return err
	}
	x.drv.waitInflight(ctx, int64(x.p.FaultWave/3)+1, time.Second)
	// A few milliseconds more, varied, so that faults also land while
	// transactions commit, not only while requests are read.
	time.Sleep(time.Duration(rand.Int64N(int64(20 * time.Millisecond))))
	return ctx.Err()
}

// restartService starts codewatch again on the same ports and database.
func (x *runCtx) restartService(ctx context.Context) error {
	s, err := x.h.startService(x.dbURL, x.logName)
	if err != nil {
		return err
	}
	return x.h.waitReady(ctx, s, 60*time.Second)
}

func scenarios() []*scenario {
	return []*scenario{
		{key: "baseline", title: "no fault: the same load, for comparison",
			extraSlots: faultWaves(func(p *params) time.Duration { return p.KillPause })},
		{
			key: "kill9", title: "kill -9 codewatch, restart", crashy: true,
			extraSlots: faultWaves(func(p *params) time.Duration { return p.KillPause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.KillPause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					x.svc().kill()
					if err := sleepUntil(ctx, time.Now().Add(x.p.KillPause)); err != nil {
						return err
					}
					x.faultEnded(time.Now())
					if err := x.restartService(ctx); err != nil {
						return fmt.Errorf("restart after kill -9: %w", err)
					}
				}
				return nil
			},
		},
		{
			key: "pg-stop", title: "Postgres fast shutdown, restart", crashy: true,
			extraSlots: faultWaves(func(p *params) time.Duration { return p.PGStopPause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.PGStopPause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					if err := x.h.pg.Stop("fast"); err != nil {
						return fmt.Errorf("stop Postgres: %w", err)
					}
					if err := sleepUntil(ctx, time.Now().Add(x.p.PGStopPause)); err != nil {
						return err
					}
					x.faultEnded(time.Now())
					if err := x.h.restartPG(ctx); err != nil {
						return fmt.Errorf("restart Postgres: %w", err)
					}
				}
				return nil
			},
		},
		{
			key: "pg-kill", title: "Postgres crash (SIGKILL postmaster), restart", crashy: true,
			extraSlots: faultWaves(func(p *params) time.Duration { return p.PGKillPause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.PGKillPause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					if err := x.h.pg.Kill(); err != nil {
						return fmt.Errorf("kill Postgres: %w", err)
					}
					if err := sleepUntil(ctx, time.Now().Add(x.p.PGKillPause)); err != nil {
						return err
					}
					x.faultEnded(time.Now())
					if err := x.h.restartPG(ctx); err != nil {
						return fmt.Errorf("restart Postgres after crash: %w", err)
					}
				}
				return nil
			},
		},
		{
			key: "sigterm", title: "SIGTERM codewatch (graceful), restart", crashy: true,
			extraSlots: faultWaves(func(p *params) time.Duration { return p.TermPause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.TermPause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					took, err := x.svc().terminate(shutdownTimeout + 5*time.Second)
					switch {
					case err != nil:
						x.res.fail("sigterm: codewatch did not exit cleanly: %v", err)
					case took > shutdownTimeout+time.Second:
						x.res.fail("sigterm: codewatch took %s to exit, CODEWATCH_SHUTDOWN_TIMEOUT is %s", took.Round(time.Millisecond), shutdownTimeout)
					default:
						x.res.note("SIGTERM: exited 0 after %s", took.Round(time.Millisecond))
					}
					if err := sleepUntil(ctx, time.Now().Add(x.p.TermPause)); err != nil {
						return err
					}
					x.faultEnded(time.Now())
					if err := x.restartService(ctx); err != nil {
						return fmt.Errorf("restart after SIGTERM: %w", err)
					}
				}
				return nil
			},
		},
		{
			key: "pool", title: fmt.Sprintf("pool exhausted (waves far past CODEWATCH_DB_MAX_CONNS=%d, ops API flooded)", dbMaxConns),
			extraSlots: func(p *params, start time.Time) []time.Time {
				var out []time.Time
				for _, at := range waveTimes(p, start) {
					out = append(out, wave(at, p.WaveSize)...)
				}
				return out
			},
			inject: poolFlood,
		},
		{
			key: "pg-freeze", title: "Postgres frozen (SIGSTOP) for longer than Svix's 15 s timeout, then resumed",
			tune: func(p params) params {
				// One freeze, with load enough before and after it.
				p.Injections = 1
				if min := p.FreezePause + 6*time.Second; p.Load < min {
					p.Load = min
				}
				return p
			},
			extraSlots: faultWaves(func(p *params) time.Duration { return p.FreezePause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.FreezePause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					n, err := x.h.freezePG()
					if err != nil {
						return fmt.Errorf("freeze Postgres: %w", err)
					}
					x.res.note("pg-freeze: stopped %d Postgres processes for %s", n, x.p.FreezePause)
					err = sleepUntil(ctx, time.Now().Add(x.p.FreezePause))
					x.faultEnded(time.Now())
					if terr := x.h.thawPG(); terr != nil {
						return fmt.Errorf("resume Postgres: %w", terr)
					}
					if err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			key: "burst", title: "burst at 10x the rate",
			extraSlots: func(p *params, start time.Time) []time.Time {
				b0 := burstStart(p, start)
				return uniformSlots(b0, p.BurstLen, p.Rate*(p.BurstFactor-1))
			},
			inject: burstWatch,
			after:  rssSettle,
		},
		{
			key: "pg-readonly", title: "Postgres read-only (default_transaction_read_only), then writable", crashy: true,
			extraSlots: faultWaves(func(p *params) time.Duration { return p.ROPause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.ROPause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					if err := setReadOnly(ctx, x, true); err != nil {
						return err
					}
					if err := sleepUntil(ctx, time.Now().Add(x.p.ROPause)); err != nil {
						return err
					}
					x.faultEnded(time.Now())
					if err := setReadOnly(ctx, x, false); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			key: "disk-full", title: "the database's disk full (tablespace on a small tmpfs), then freed", crashy: true,
			prepare: func(ctx context.Context, h *harness) (string, string, error) {
				skip, err := h.prepareSmallDisk(ctx)
				return tsName, skip, err
			},
			extraSlots: faultWaves(func(p *params) time.Duration { return p.DiskPause }),
			inject: func(ctx context.Context, x *runCtx) error {
				for _, at := range faultTimes(x.p, x.start, x.p.DiskPause) {
					if err := strike(ctx, x, at); err != nil {
						return err
					}
					n, err := x.h.fillDisk()
					if err != nil {
						return fmt.Errorf("fill the disk: %w", err)
					}
					x.res.note("disk-full: filled the database's disk with %s", mib(n))
					if err := sleepUntil(ctx, time.Now().Add(x.p.DiskPause)); err != nil {
						return err
					}
					x.faultEnded(time.Now())
					if err := x.h.freeDisk(); err != nil {
						return fmt.Errorf("free the disk: %w", err)
					}
				}
				return nil
			},
		},
	}
}

// setReadOnly makes every new transaction on the server read-only, as a
// server put in read-only mode (disk nearly full, failover) does; writes fail
// with SQLSTATE 25006.
func setReadOnly(ctx context.Context, x *runCtx, on bool) error {
	conn, err := pgx.Connect(ctx, x.h.pg.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	stmts := []string{"SET default_transaction_read_only = off", "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"}
	if on {
		stmts[1] = "ALTER SYSTEM SET default_transaction_read_only = on"
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
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
	// Sample how many connections codewatch holds on its database.
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

// runScenario runs one scenario on a fresh database and service, and checks
// every invariant.
func runScenario(ctx context.Context, h *harness, p *params, sc *scenario, rng *rand.Rand) *result {
	t0 := time.Now()
	if sc.tune != nil {
		tuned := sc.tune(*p)
		p = &tuned
	}
	res := &result{name: sc.key, statuses: map[int]int{}, netErrs: map[string]int{}, dupAnswers: map[string]int{}}
	defer func() { res.elapsed = time.Since(t0) }()
	x := &runCtx{h: h, p: p, sc: sc, res: res, dbName: "faults_" + sanitize(sc.key), logName: "codewatch-" + sc.key + ".log"}
	var ts string
	if sc.prepare != nil {
		var skip string
		var err error
		ts, skip, err = sc.prepare(ctx, h)
		if err != nil {
			res.fail("setup: %v", err)
			res.void = true
			return res
		}
		if skip != "" {
			res.skipped = skip
			return res
		}
	}
	var err error
	x.dbURL, err = h.createDB(ctx, x.dbName, ts)
	if err != nil {
		res.fail("setup: create database: %v", err)
		res.void = true
		return res
	}
	svc, err := h.startService(x.dbURL, x.logName)
	if err == nil {
		err = h.waitReady(ctx, svc, 60*time.Second)
	}
	if err != nil {
		res.fail("setup: start codewatch: %v\n%s", err, indent(tail(filepath.Join(h.dir, x.logName), 20)))
		res.void = true
		return res
	}
	// Whatever happens below, no codewatch outlives its scenario.
	defer func() {
		if s := x.svc(); s != nil && s.running() {
			s.kill()
		}
	}()
	h.recv.take()

	x.start = time.Now().Add(300 * time.Millisecond)
	slots := uniformSlots(x.start, p.Load, p.Rate)
	if sc.extraSlots != nil {
		slots = append(slots, sc.extraSlots(p, x.start)...)
	}
	codes, dels := plan(rng, defaultMix, slots, p.Rate)
	res.codes = len(codes)
	for _, c := range codes {
		if c.shuffled {
			res.shuffled++
		}
	}
	x.drv = newDriver("http://"+h.pubAddr+"/webhooks/seam", h.secret, p.Budget)
	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		x.drv.run(ctx, dels)
	}()

	if sc.inject != nil {
		if err := sc.inject(ctx, x); err != nil {
			res.fail("fault injection: %v", err)
		}
	}
	<-scheduled
	lastSched := dels[len(dels)-1].sched
	if !x.drv.wait(time.Until(lastSched) + p.Budget + 30*time.Second) {
		res.fail("driver: messages still outstanding %s after the last was due", p.Budget+30*time.Second)
		res.void = true
		return res
	}
	if ctx.Err() != nil {
		res.fail("interrupted")
		res.void = true
		return res
	}
	if s := x.svc(); s == nil || !s.running() {
		res.fail("codewatch is not running after the scenario")
		if err := x.restartService(ctx); err != nil {
			res.void = true
			return res
		}
	}

	conn, err := pgx.Connect(ctx, x.dbURL)
	if err != nil {
		res.fail("check: connect: %v", err)
		res.void = true
		return res
	}
	defer conn.Close(context.Background())

	// The outbox drains: every alert delivered and recorded.
	drainT0 := time.Now()
	var pending int
	for {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM alert_deliveries WHERE status = 'pending'`).Scan(&pending); err != nil {
			res.fail("check: count pending alerts: %v", err)
			break
		}
		if pending == 0 {
			break
		}
		if time.Since(drainT0) > p.AlertDrain {
			res.fail("alerts: %d deliveries still pending %s after the load", pending, p.AlertDrain)
			break
		}
		if sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) != nil {
			break
		}
	}
	if d := time.Since(drainT0); d > 5*time.Second {
		res.note("alert outbox took %s to drain", d.Round(100*time.Millisecond))
	}
	if sc.after != nil {
		if err := sc.after(ctx, x); err != nil {
			res.fail("after: %v", err)
		}
	}
	receipts, bad := h.recv.take()

	checkLedger(res, x.drv, dels)
	stored, err := checkStore(ctx, res, conn, dels)
	if err != nil {
		res.fail("check: %v", err)
		return res
	}
	if err := checkStates(ctx, res, conn, codes, stored); err != nil {
		res.fail("check: %v", err)
	}
	if err := checkAlerts(ctx, res, conn, codes, stored, receipts, bad, sc.crashy); err != nil {
		res.fail("check: %v", err)
	}

	d := x.drv
	d.mu.Lock()
	lat := append([]time.Duration(nil), d.latencies...)
	acks := append([]time.Time(nil), d.ackTimes...)
	for k, v := range d.statuses {
		res.statuses[k] = v
	}
	for k, v := range d.netErrs {
		res.netErrs[k] = v
	}
	res.hung, res.maxLag = d.hung, d.maxLag
	if m, ok := d.netSample["other"]; ok {
		res.note("an attempt without an answer, of a kind not classified: %s", m)
	}
	longest := d.longest
	d.mu.Unlock()
	res.maxIn = d.maxIn.Load()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		res.maxLatency = lat[len(lat)-1]
	}
	x.mu.Lock()
	res.faults = len(x.faultEnds)
	rec, ok := recoveryTimes(x.faultEnds, acks)
	x.mu.Unlock()
	res.recovery = rec
	if !ok {
		res.fail("recovery: no 2xx after the end of a fault")
	}
	for st, n := range res.statuses {
		if st != http.StatusServiceUnavailable {
			res.fail("answers: %d responses with status %d (errors must be 503)", n, st)
		}
	}
	if res.hung > 0 {
		res.fail("answers: %d requests got no answer within %s (longest %s)", res.hung, svixTimeout, longest.Round(time.Millisecond))
	}
	if res.maxLag > time.Second {
		res.note("driver lagged its schedule by up to %s", res.maxLag.Round(time.Millisecond))
	}

	if h.verbose {
		res.note("timeline (attempts ending per second since the load began):\n%s", d.timeline(x.start, time.Second))
		x.mu.Lock()
		for _, fe := range x.faultEnds {
			res.note("fault ended at t=%.1fs", fe.Sub(x.start).Seconds())
		}
		x.mu.Unlock()
	}

	// The service stops cleanly for the next scenario.
	if s := x.svc(); s != nil && s.running() {
		if took, err := s.terminate(shutdownTimeout + 5*time.Second); err != nil {
			res.fail("final SIGTERM: %v (after %s)", err, took.Round(time.Millisecond))
		}
	}
	if len(res.violations) > 0 {
		res.note("codewatch log (last lines):\n%s", indent(tail(filepath.Join(h.dir, x.logName), 15)))
	}
	return res
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func indent(s string) string {
	out := "    "
	for _, c := range s {
		out += string(c)
		if c == '\n' {
			out += "    "
		}
	}
	return out
}
