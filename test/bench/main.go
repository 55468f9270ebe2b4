// Command bench measures codewatch's webhook ingest and overdue sweeper on
// this machine, against a private Postgres with fsync on, and checks that
// every acknowledged event was stored exactly once. `make bench` runs it.
//
// Phases: start Postgres (localpg) and the real binary (`serve`); drive POST
// /webhooks/seam with signed, distinct access-code lifecycles at each
// concurrency (closed loop); check the database against the driver's ledger;
// stop the service; run pgbench with one event's ingest transaction at the
// same client counts (the one-transaction-per-event ceiling of this
// database on this box); seed a fresh database with a million codes and time
// one sweep. It ends with a markdown table for the issue and the docs.
//
// Flags: -duration (10s per level), -quick (CI: 3s levels, 100,000 codes),
// -levels 8,32,128, -skip-sweep, -skip-pgbench, -env KEY=VALUE (service
// environment, e.g. CODEWATCH_DB_MAX_CONNS=4), -statements (diagnosis: top
// statements per level from pg_stat_statements), -keep (keep the temp dir).
// Run `go run ./test/bench -h` for all of them.
//
// -reads runs the read benchmark instead (`make bench-reads`, reads.go): a
// million codes and three million events, webhooks at 1,000 a second, and
// each ops read from 8 concurrent readers, with its own table.
//
// Exit status: 0 when every correctness check passed (performance targets
// are printed PASS/FAIL but do not fail the run), 1 otherwise, 2 on usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/localpg"
)

// Targets from the issues: the service / pgbench ratio per concurrency
// (pgbench runs one event's ingest transaction per transaction), p99 at
// targetConc, peak RSS, and the sweep.
const (
	targetConc   = 32
	targetP99    = 15 * time.Millisecond
	targetRSSKiB = 64 << 10
	// During the attack (500 forged 1 MiB uploads at once).
	targetAttackRSSKiB = 128 << 10
	targetAttackP99    = 50 * time.Millisecond
	targetSweep        = time.Second
	ingestHistogram    = "codewatch_ingest_duration_seconds"
)

var targetRatios = map[int]float64{8: 1.0, 32: 1.6, 128: 3.0}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// level is everything measured at one concurrency.
type level struct {
	conc    int
	load    *levelLoad
	st      levelStats
	cpu     cpuSample
	wall    time.Duration
	hist    histogram
	stored  float64 // service's own count of stored events in the window
	gc      float64 // GC cycles in the window
	gcPause float64 // seconds of GC pauses in the window
	heap    float64 // heap in use at the end, bytes
	gorout  float64 // goroutines at the end
	alloc   float64 // bytes the service allocated in the window
	db      dbSample
	// statements: the top of pg_stat_statements for the window (-statements)
	statements []string
	hwmKiB     int64
	rssKiB     int64
	pgb        *pgbenchResult
	pgbCPU     float64 // Postgres CPU seconds during pgbench
	pgbWall    time.Duration
	pgbError   string
}

// runner is one run's output: its log and the failures it found.
type runner struct {
	o              *options
	stdout, stderr io.Writer
	failures       []string
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.stdout, format+"\n", a...)
}

// fail records a failed check; the run goes on.
func (r *runner) fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.failures = append(r.failures, msg)
	fmt.Fprintln(r.stdout, "FAIL:", msg)
}

// fatal ends the run on err.
func (r *runner) fatal(err error) int {
	fmt.Fprintln(r.stdout, "FAIL:", err)
	fmt.Fprintln(r.stdout, "RESULT: FAILED")
	return 1
}

// result prints the run's result and returns its exit status.
func (r *runner) result() int {
	if len(r.failures) > 0 {
		fmt.Fprintf(r.stdout, "RESULT: FAILED (%d problem(s), listed above with FAIL)\n", len(r.failures))
		return 1
	}
	fmt.Fprintln(r.stdout, "RESULT: OK (correctness checks passed; targets above are informative)")
	return 0
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	if o.attackChild != "" {
		return attackChild(o.attackChild, o.attackers, o.duration, stdout)
	}
	r := &runner{o: o, stdout: stdout, stderr: stderr}

	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return r.fatal(err)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return r.fatal(fmt.Errorf("-bin %s: not found; build it with `make build`", o.bin))
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "codewatch-bench-")
	if err != nil {
		return r.fatal(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return r.fatal(err)
	}
	defer func() {
		if o.keep {
			r.logf("kept %s", tmp)
			return
		}
		if err := os.RemoveAll(tmp); err != nil {
			fmt.Fprintln(stderr, "bench: remove", tmp+":", err)
		}
	}()

	if o.reads {
		r.logf("# codewatch read benchmark")
		if err := runReads(ctx, o, tmp, bin, r.logf, r.fail); err != nil {
			return r.fatal(err)
		}
		return r.result()
	}
	return r.ingest(ctx, tmp, bin)
}

// ingestRun is what the ingest benchmark's phases share: Postgres, the
// service, the load driver and the database's counters.
type ingestRun struct {
	srv   *localpg.Server
	svc   *service
	pmPID int
	d     *driver
	dbs   *dbSampler
}

// ingest is the ingest benchmark (make bench): start Postgres and the
// service, measure each level (and its pgbench ceiling), the attack, check
// exactly once, stop the service, time the sweep, print the summary.
func (r *runner) ingest(ctx context.Context, tmp, bin string) int {
	o, stderr := r.o, r.stderr
	began := time.Now()
	r.logf("# codewatch benchmark")
	r.logf("starting Postgres in %s", tmp)
	pgOpts := localpg.Options{Settings: map[string]string{}}
	if o.statements {
		for k, v := range statementsSettings {
			pgOpts.Settings[k] = v
		}
	}
	setPGFlags(pgOpts.Settings, o.pg)
	srv, err := startPostgres(ctx, tmp, pgOpts)
	if err != nil {
		return r.fatal(err)
	}
	defer func() {
		if err := srv.Stop("fast"); err != nil {
			fmt.Fprintln(stderr, "bench: stop Postgres:", err, "; killing it")
			_ = srv.Kill()
		}
	}()
	x := &ingestRun{srv: srv, pmPID: postmasterPID(filepath.Join(srv.Dir, "data"))}
	pgVersion, pgSettings := describePostgres(ctx, srv)

	secret, token := newSecret(), newToken()
	svc, err := startService(ctx, bin, tmp, srv.URL("codewatch"), secret, token, o.env)
	defer func() {
		if svc != nil && svc.running() {
			if err := svc.stop(30 * time.Second); err != nil {
				fmt.Fprintln(stderr, "bench: stop codewatch:", err)
			}
		}
	}()
	if err != nil {
		return r.fatal(err)
	}
	x.svc = svc
	r.logf("machine: %d CPUs, %s, Go %s; Postgres %s (%s)", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH,
		runtime.Version(), pgVersion, pgSettings)
	r.logf("service: %s serve (pid %d), env %s; public %s, ops %s", o.bin, svc.pid, envSummary(o.env), svc.pubURL, svc.opsURL)
	r.logf("load: closed loop, %s warm-up + %s measured per level; lifecycles of %d events over distinct codes (1 in %d with a removal delay)",
		o.warmup, o.duration, stagesPerCode, troubleEvery)

	// The figures mean something only on an otherwise idle machine.
	idle0 := sampleCPU(svc.pid, x.pmPID)
	sleepUntil(ctx, time.Now().Add(time.Second))
	idle1 := sampleCPU(svc.pid, x.pmPID).sub(idle0)
	r.logf("before the load: machine %.2f of %d cores busy (other work %.2f)", cores(idle1.machineBusy, time.Second),
		runtime.NumCPU(), cores(idle1.other(), time.Second))

	maxConc := 0
	for _, c := range o.levels {
		maxConc = max(maxConc, c)
	}
	client := newClient(maxConc)
	defer client.CloseIdleConnections()
	x.d = &driver{url: svc.pubURL + "/webhooks/seam", secret: secret, run: newRunTag(), client: client}

	if x.dbs, err = newDBSampler(ctx, srv.URL("codewatch")); err != nil {
		return r.fatal(err)
	}
	defer x.dbs.close()
	if o.statements {
		if err := x.dbs.enableStatements(ctx); err != nil {
			return r.fatal(fmt.Errorf("-statements: %w", err))
		}
	}
	levels, err := r.measureLevels(ctx, x, tmp)
	if err != nil {
		return r.fatal(err)
	}
	atk, verified, err := r.attack(ctx, x, levels)
	if err != nil {
		return r.fatal(err)
	}
	vr, hwm, err := r.verifyAndStop(ctx, x, verified)
	if err != nil {
		return r.fatal(err)
	}
	sw := r.sweep(ctx, x)
	if ctx.Err() != nil {
		r.fail("interrupted or timed out: %v", context.Cause(ctx))
	}

	printSummary(r.stdout, o, levels, atk, vr, sw, hwm, time.Since(began))
	return r.result()
}

// measureLevels measures each concurrency in turn, each followed by
// pgbench at the same concurrency.
func (r *runner) measureLevels(ctx context.Context, x *ingestRun, tmp string) ([]*level, error) {
	o := r.o
	var levels []*level
	for _, c := range o.levels {
		if ctx.Err() != nil {
			break
		}
		lv, err := measureLevel(ctx, x.d, x.svc, x.dbs, x.pmPID, c, o.warmup, o.duration, o.statements)
		if err != nil {
			return nil, err
		}
		levels = append(levels, lv)
		printLevel(r.stdout, lv)
		printStatements(r.stdout, lv.statements)
		if !x.svc.running() {
			return nil, fmt.Errorf("codewatch exited during the load (%v); its log:\n%s", x.svc.waitErr, x.svc.logTail(20))
		}
		// The database's ceiling at this level, measured right away: on a
		// shared machine the speed drifts within minutes, and the ratio
		// means something only between neighbouring measurements. The
		// service is idle meanwhile (its job polling is a few queries a
		// second).
		if !o.skipPgbench {
			if err := runPgbenchLevels(ctx, r.stdout, tmp, x.srv, x.dbs, x.pmPID, []*level{lv}, o.warmup, o.duration, o.statements); err != nil {
				r.fail("pgbench: %v", err)
			}
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", context.Cause(ctx))
	}
	return levels, nil
}

// attack measures memory before authentication: forged uploads must not
// grow the service past its budget, nor starve Seam's signed events.
// verified: the levels whose events the exactly-once check covers.
func (r *runner) attack(ctx context.Context, x *ingestRun, levels []*level) (atk *attackReport, verified []*level, err error) {
	if r.o.skipAttack {
		return nil, levels, nil
	}
	if atk, err = runAttack(ctx, x.d, x.svc, x.pmPID, r.o.attackers, r.o.warmup, r.o.duration); err != nil {
		return nil, nil, err
	}
	printAttack(r.stdout, atk)
	verified = append(append([]*level(nil), levels...), &level{conc: attackLabel, load: atk.signedLoad})
	if !x.svc.running() {
		return nil, nil, fmt.Errorf("codewatch exited during the attack (%v); its log:\n%s", x.svc.waitErr, x.svc.logTail(20))
	}
	return atk, verified, nil
}

// verifyAndStop checks exactly once, against the driver's ledger, then
// stops the service; hwm is its peak RSS.
func (r *runner) verifyAndStop(ctx context.Context, x *ingestRun, verified []*level) (vr *verifyReport, hwm int64, err error) {
	if vr, err = verifyStored(ctx, x.srv.URL("codewatch"), x.d.run, verified); err != nil {
		return nil, 0, fmt.Errorf("verify: %w", err)
	}
	printVerify(r.stdout, vr)
	for _, p := range vr.problems {
		r.fail("%s", p)
	}
	hwm, rss := memKB(x.svc.pid)
	r.logf("service memory after the load: VmHWM %.1f MiB, VmRSS %.1f MiB", kib(hwm), kib(rss))
	r.logf("%s", x.svc.logSummary(5))
	if err := x.svc.stop(30 * time.Second); err != nil {
		r.fail("codewatch did not stop cleanly on SIGTERM: %v", err)
	} else {
		r.logf("service stopped cleanly on SIGTERM")
	}
	return vr, hwm, nil
}

// sweep times one sweep over a fresh database (nil: skipped, or it failed
// before measuring).
func (r *runner) sweep(ctx context.Context, x *ingestRun) *sweepReport {
	o := r.o
	if o.skipSweep || ctx.Err() != nil {
		return nil
	}
	r.logf("\n## sweeper: %d codes, %d overdue, removal timeout %s", o.sweepCodes, o.sweepOverdue, sweepRemovalTimeout)
	sctx, scancel := context.WithTimeout(ctx, 3*time.Minute)
	var stmts *dbSampler
	if o.statements {
		stmts = x.dbs
	}
	sw, err := runSweep(sctx, x.srv, o.sweepCodes, o.sweepOverdue, r.logf, stmts)
	scancel()
	if err != nil {
		r.fail("sweep: %v", err)
	}
	if sw != nil {
		r.logf("EXPLAIN of the sweeper's SELECT:\n%s", indent(sw.explain))
		r.logf("sweep: flagged %d (Sweep), %d newly removal_overdue, %d alerts, %d deliveries, %d left overdue; took %s",
			sw.flagged, sw.newlyFlagged, sw.alerts, sw.deliveries, sw.leftOverdue, sw.duration.Round(time.Millisecond))
		printStatements(r.stdout, sw.statements)
		for _, p := range sw.problems {
			r.fail("sweep: %s", p)
		}
	}
	return sw
}

func newRunTag() string {
	return fmt.Sprintf("%08x", uint32(time.Now().UnixNano()))
}

func envSummary(env []string) string {
	if len(env) == 0 {
		return "defaults (CODEWATCH_DB_MAX_CONNS=10, CODEWATCH_INGEST_WORKERS=1, batches of up to 128)"
	}
	return strings.Join(env, " ")
}

// describePostgres reads the server's version and settings (not the
// domain's tables: its SQL stays here).
func describePostgres(ctx context.Context, srv *localpg.Server) (string, string) {
	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return "?", err.Error()
	}
	defer conn.Close(context.Background())
	var version string
	_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&version)
	var parts []string
	for _, name := range []string{"fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_connections"} {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			parts = append(parts, name+"="+v)
		}
	}
	return version, strings.Join(parts, ", ")
}

// measureLevel runs one concurrency and samples CPU, memory and the service's
// metrics at the edges of the measured window.
func measureLevel(ctx context.Context, d *driver, svc *service, dbs *dbSampler, pmPID, conc int,
	warmup, measure time.Duration, statements bool) (*level, error) {
	lv := &level{conc: conc}
	done := make(chan *levelLoad, 1)
	go func() { done <- d.runLevel(ctx, conc, warmup, measure) }()
	start := time.Now()
	metricsURL := svc.opsURL + "/metrics"
	oc := newClient(2)
	defer oc.CloseIdleConnections()

	sleepUntil(ctx, start.Add(warmup))
	m0, err0 := scrape(ctx, oc, metricsURL)
	c0 := sampleCPU(svc.pid, pmPID)
	db0 := dbs.sample(ctx)
	if statements {
		dbs.resetStatements(ctx)
	}
	sleepUntil(ctx, start.Add(warmup+measure))
	c1 := sampleCPU(svc.pid, pmPID)
	db1 := dbs.sample(ctx)
	if statements {
		lv.statements = dbs.topStatements(ctx, 12)
	}
	m1, err1 := scrape(ctx, oc, metricsURL)
	lv.db = db1.sub(db0)
	lv.hwmKiB, lv.rssKiB = memKB(svc.pid)
	lv.load = <-done
	if ctx.Err() != nil {
		return lv, context.Cause(ctx)
	}
	lv.st = lv.load.stats()
	lv.cpu = c1.sub(c0)
	lv.wall = c1.at.Sub(c0.at)
	if err0 == nil && err1 == nil {
		lv.hist = histogramOf(m1, ingestHistogram).sub(histogramOf(m0, ingestHistogram))
		lv.stored = sumMatching(m1, "codewatch_webhooks_received_total", `outcome="stored"`) -
			sumMatching(m0, "codewatch_webhooks_received_total", `outcome="stored"`)
		lv.gc = m1["go_gc_duration_seconds_count"] - m0["go_gc_duration_seconds_count"]
		lv.gcPause = m1["go_gc_duration_seconds_sum"] - m0["go_gc_duration_seconds_sum"]
		lv.heap, lv.gorout = m1["go_memstats_heap_inuse_bytes"], m1["go_goroutines"]
		lv.alloc = m1["go_memstats_alloc_bytes_total"] - m0["go_memstats_alloc_bytes_total"]
	}
	return lv, nil
}

func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(t)):
	}
}
