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
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/postgres"
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

type options struct {
	bin          string
	duration     time.Duration
	warmup       time.Duration
	levels       []int
	quick        bool
	skipSweep    bool
	skipPgbench  bool
	skipAttack   bool
	attackers    int
	attackChild  string
	sweepCodes   int
	sweepOverdue int
	keep         bool
	statements   bool
	env          []string
	pg           []string
	timeout      time.Duration

	// -reads: the read benchmark (reads.go) instead of the others.
	reads          bool
	readCodes      int
	readDevices    int
	readWorkspaces int
	readers        int
	readDuration   time.Duration
	readWarmup     time.Duration
	readInterval   time.Duration
	readStates     string
	readCapacity   bool
	ingestRate     int
}

type envFlag struct{ v *[]string }

func (e envFlag) String() string {
	if e.v == nil {
		return ""
	}
	return strings.Join(*e.v, ",")
}

func (e envFlag) Set(s string) error {
	if !strings.Contains(s, "=") {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*e.v = append(*e.v, s)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin/codewatch", "the codewatch binary to run (make build)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per concurrency level (pgbench runs warm-up + this)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each level")
	levels := fs.String("levels", "8,32,128", "comma-separated concurrencies")
	fs.BoolVar(&o.quick, "quick", false, "CI length: 3s per level, 1s warm-up, 100,000 codes for the sweep")
	fs.BoolVar(&o.skipSweep, "skip-sweep", false, "skip the sweeper measurement")
	fs.BoolVar(&o.skipPgbench, "skip-pgbench", false, "skip the pgbench ceiling")
	fs.BoolVar(&o.skipAttack, "skip-attack", false, "skip the unverified-body (memory) attack")
	fs.IntVar(&o.attackers, "attackers", 500, "concurrent forged 1 MiB uploads in the attack phase")
	fs.StringVar(&o.attackChild, "attack-child", "", "internal: be the attacking child process, uploading to this URL")
	fs.IntVar(&o.sweepCodes, "sweep-codes", 1_000_000, "access codes seeded for the sweep")
	fs.IntVar(&o.sweepOverdue, "sweep-overdue", 10_000, "of which overdue")
	fs.BoolVar(&o.statements, "statements", false, "diagnosis: preload pg_stat_statements and print the statements that took the most time per level")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (Postgres data, service log)")
	fs.Var(envFlag{&o.pg}, "pg", "extra postgresql.conf NAME=VALUE for the benchmark's Postgres, e.g. -pg shared_buffers=1GB (repeatable)")
	fs.Var(envFlag{&o.env}, "env", "extra KEY=VALUE for the service's environment, e.g. -env CODEWATCH_DB_MAX_CONNS=20 (repeatable)")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound on the whole run (default: from the durations)")
	fs.BoolVar(&o.reads, "reads", false, "run the read benchmark (make bench-reads) instead: ops reads at a million codes during ingest")
	fs.IntVar(&o.readCodes, "read-codes", 1_000_000, "-reads: access codes seeded (about 3.1 events each)")
	fs.IntVar(&o.readDevices, "read-devices", 5_000, "-reads: locks the codes are spread over")
	fs.IntVar(&o.readWorkspaces, "read-workspaces", 20, "-reads: workspaces the locks are spread over")
	fs.IntVar(&o.readers, "readers", 8, "-reads: concurrent readers")
	fs.DurationVar(&o.readDuration, "read-duration", 10*time.Second, "-reads: measured time per read")
	fs.DurationVar(&o.readWarmup, "read-warmup", 2*time.Second, "-reads: unmeasured warm-up before each read")
	fs.DurationVar(&o.readInterval, "read-interval", 100*time.Millisecond, "-reads: each reader starts a request this often, for the targets (0: closed loop)")
	fs.BoolVar(&o.readCapacity, "read-capacity", true, "-reads: also measure each read with the readers in a closed loop (capacity)")
	fs.StringVar(&o.readStates, "read-states", "awaiting_removal,delayed,failed", "-reads: the deletion_state filter measured")
	fs.IntVar(&o.ingestRate, "ingest-rate", 1000, "-reads: webhooks per second throughout")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["warmup"] {
			o.warmup = time.Second
		}
		if !set["sweep-codes"] {
			o.sweepCodes = 100_000
		}
		if !set["read-codes"] {
			o.readCodes = 50_000
		}
		if !set["read-devices"] {
			o.readDevices = 500
		}
		if !set["read-duration"] {
			o.readDuration = 3 * time.Second
		}
		if !set["read-warmup"] {
			o.readWarmup = time.Second
		}
	}
	if o.readers < 1 || o.ingestRate < 1 || o.readCodes < 1000 || o.readDevices < 1 || o.readWorkspaces < 1 {
		return nil, fmt.Errorf("-readers, -ingest-rate, -read-devices, -read-workspaces must be positive and -read-codes at least 1000")
	}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("-levels: %q is not a concurrency from 1 to 4096", s)
		}
		o.levels = append(o.levels, n)
	}
	if o.duration < time.Second {
		return nil, fmt.Errorf("-duration: at least 1s")
	}
	if o.timeout == 0 {
		per := o.warmup + o.duration + 5*time.Second
		o.timeout = time.Duration(len(o.levels))*per*2 + 4*time.Minute
		if o.reads {
			// Seeding a million codes takes minutes; 15 phases.
			o.timeout = 30*time.Minute + 15*(o.readWarmup+o.readDuration)*2
		}
	}
	return o, nil
}

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
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, format+"\n", a...)
	}
	var failures []string
	fail := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		failures = append(failures, msg)
		fmt.Fprintln(stdout, "FAIL:", msg)
	}
	fatal := func(err error) int {
		fmt.Fprintln(stdout, "FAIL:", err)
		fmt.Fprintln(stdout, "RESULT: FAILED")
		return 1
	}

	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return fatal(err)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return fatal(fmt.Errorf("-bin %s: not found; build it with `make build`", o.bin))
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "codewatch-bench-")
	if err != nil {
		return fatal(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fatal(err)
	}
	defer func() {
		if o.keep {
			logf("kept %s", tmp)
			return
		}
		if err := os.RemoveAll(tmp); err != nil {
			fmt.Fprintln(stderr, "bench: remove", tmp+":", err)
		}
	}()

	if o.reads {
		logf("# codewatch read benchmark")
		if err := runReads(ctx, o, tmp, bin, logf, fail); err != nil {
			return fatal(err)
		}
		if len(failures) > 0 {
			fmt.Fprintf(stdout, "RESULT: FAILED (%d problem(s), listed above with FAIL)\n", len(failures))
			return 1
		}
		fmt.Fprintln(stdout, "RESULT: OK (correctness checks passed; targets above are informative)")
		return 0
	}

	began := time.Now()
	logf("# codewatch benchmark")
	logf("starting Postgres in %s", tmp)
	pgOpts := localpg.Options{Settings: map[string]string{}}
	if o.statements {
		for k, v := range statementsSettings {
			pgOpts.Settings[k] = v
		}
	}
	for _, kv := range o.pg {
		k, v, _ := strings.Cut(kv, "=")
		pgOpts.Settings[k] = "'" + strings.Trim(v, "'") + "'"
	}
	srv, err := localpg.Start(ctx, filepath.Join(tmp, "pg"), pgOpts)
	if err != nil {
		// Start may fail after the server came up (creating the database):
		// SIGINT is the postmaster's fast shutdown.
		if pid := postmasterPID(filepath.Join(tmp, "pg", "data")); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGINT)
		}
		return fatal(fmt.Errorf("start Postgres: %w", err))
	}
	defer func() {
		if err := srv.Stop("fast"); err != nil {
			fmt.Fprintln(stderr, "bench: stop Postgres:", err, "; killing it")
			_ = srv.Kill()
		}
	}()
	pgDataDir := filepath.Join(srv.Dir, "data")
	pmPID := postmasterPID(pgDataDir)
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
		return fatal(err)
	}
	logf("machine: %d CPUs, %s, Go %s; Postgres %s (%s)", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH,
		runtime.Version(), pgVersion, pgSettings)
	logf("service: %s serve (pid %d), env %s; public %s, ops %s", o.bin, svc.pid, envSummary(o.env), svc.pubURL, svc.opsURL)
	logf("load: closed loop, %s warm-up + %s measured per level; lifecycles of %d events over distinct codes (1 in %d with a removal delay)",
		o.warmup, o.duration, stagesPerCode, troubleEvery)

	// The figures mean something only on an otherwise idle machine.
	idle0 := sampleCPU(svc.pid, pmPID)
	sleepUntil(ctx, time.Now().Add(time.Second))
	idle1 := sampleCPU(svc.pid, pmPID).sub(idle0)
	logf("before the load: machine %.2f of %d cores busy (other work %.2f)", cores(idle1.machineBusy, time.Second),
		runtime.NumCPU(), cores(idle1.other(), time.Second))

	maxConc := 0
	for _, c := range o.levels {
		maxConc = max(maxConc, c)
	}
	client := newClient(maxConc)
	defer client.CloseIdleConnections()
	d := &driver{url: svc.pubURL + "/webhooks/seam", secret: secret, run: newRunTag(), client: client}

	dbs, err := newDBSampler(ctx, srv.URL("codewatch"))
	if err != nil {
		return fatal(err)
	}
	defer dbs.close()
	if o.statements {
		if err := dbs.enableStatements(ctx); err != nil {
			return fatal(fmt.Errorf("-statements: %w", err))
		}
	}
	var levels []*level
	for _, c := range o.levels {
		if ctx.Err() != nil {
			break
		}
		lv, err := measureLevel(ctx, d, svc, dbs, pmPID, c, o.warmup, o.duration, o.statements)
		if err != nil {
			return fatal(err)
		}
		levels = append(levels, lv)
		printLevel(stdout, lv)
		printStatements(stdout, lv.statements)
		if !svc.running() {
			return fatal(fmt.Errorf("codewatch exited during the load (%v); its log:\n%s", svc.waitErr, svc.logTail(20)))
		}
		// The database's ceiling at this level, measured right away: on a
		// shared machine the speed drifts within minutes, and the ratio
		// means something only between neighbouring measurements. The
		// service is idle meanwhile (its job polling is a few queries a
		// second).
		if !o.skipPgbench {
			if err := runPgbenchLevels(ctx, stdout, tmp, srv, dbs, pmPID, []*level{lv}, o.warmup, o.duration, o.statements); err != nil {
				fail("pgbench: %v", err)
			}
		}
	}
	if ctx.Err() != nil {
		return fatal(fmt.Errorf("interrupted: %w", context.Cause(ctx)))
	}

	// Memory before authentication: forged uploads must not grow the
	// service past its budget, nor starve Seam's signed events.
	var atk *attackReport
	verified := levels
	if !o.skipAttack {
		if atk, err = runAttack(ctx, d, svc, pmPID, o.attackers, o.warmup, o.duration); err != nil {
			return fatal(err)
		}
		printAttack(stdout, atk)
		verified = append(append([]*level(nil), levels...), &level{conc: attackLabel, load: atk.signedLoad})
		if !svc.running() {
			return fatal(fmt.Errorf("codewatch exited during the attack (%v); its log:\n%s", svc.waitErr, svc.logTail(20)))
		}
	}

	// Exactly once, against the driver's ledger.
	vr, err := verifyStored(ctx, srv.URL("codewatch"), d.run, verified)
	if err != nil {
		return fatal(fmt.Errorf("verify: %w", err))
	}
	printVerify(stdout, vr)
	for _, p := range vr.problems {
		fail("%s", p)
	}
	hwm, rss := memKB(svc.pid)
	logf("service memory after the load: VmHWM %.1f MiB, VmRSS %.1f MiB", kib(hwm), kib(rss))
	logf("%s", svc.logSummary(5))
	if err := svc.stop(30 * time.Second); err != nil {
		fail("codewatch did not stop cleanly on SIGTERM: %v", err)
	} else {
		logf("service stopped cleanly on SIGTERM")
	}

	var sw *sweepReport
	if !o.skipSweep && ctx.Err() == nil {
		logf("\n## sweeper: %d codes, %d overdue, removal timeout %s", o.sweepCodes, o.sweepOverdue, sweepRemovalTimeout)
		sctx, scancel := context.WithTimeout(ctx, 3*time.Minute)
		var stmts *dbSampler
		if o.statements {
			stmts = dbs
		}
		sw, err = runSweep(sctx, srv, o.sweepCodes, o.sweepOverdue, logf, stmts)
		scancel()
		if err != nil {
			fail("sweep: %v", err)
		}
		if sw != nil {
			logf("EXPLAIN of the sweeper's SELECT:\n%s", indent(sw.explain))
			logf("sweep: flagged %d (Sweep), %d newly removal_overdue, %d alerts, %d deliveries, %d left overdue; took %s",
				sw.flagged, sw.newlyFlagged, sw.alerts, sw.deliveries, sw.leftOverdue, sw.duration.Round(time.Millisecond))
			printStatements(stdout, sw.statements)
			for _, p := range sw.problems {
				fail("sweep: %s", p)
			}
		}
	}
	if ctx.Err() != nil {
		fail("interrupted or timed out: %v", context.Cause(ctx))
	}

	printSummary(stdout, o, levels, atk, vr, sw, hwm, time.Since(began))
	if len(failures) > 0 {
		fmt.Fprintf(stdout, "RESULT: FAILED (%d problem(s), listed above with FAIL)\n", len(failures))
		return 1
	}
	fmt.Fprintln(stdout, "RESULT: OK (correctness checks passed; targets above are informative)")
	return 0
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

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func kib(k int64) float64        { return float64(k) / 1024 }

func cores(sec float64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return sec / wall.Seconds()
}

func printLevel(w io.Writer, lv *level) {
	st := lv.st
	fmt.Fprintf(w, "\n## concurrency %d\n", lv.conc)
	fmt.Fprintf(w, "  events/s    %.0f  (%d answered 2xx inside the %s window; %d requests started in it, %d errors; %d sent in all)\n",
		st.eventsPerSec, st.completed, lv.load.measure, st.started, st.errors, lv.load.sentEvents)
	fmt.Fprintf(w, "  latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms (client side)\n",
		ms(st.p50), ms(st.p90), ms(st.p99), ms(st.max))
	if lv.hist.count > 0 {
		fmt.Fprintf(w, "  server      ingest histogram: p50 %.2f ms  p99 %.2f ms  mean %.2f ms over %.0f deliveries (%.0f stored)\n",
			lv.hist.quantile(0.5)*1000, lv.hist.quantile(0.99)*1000, lv.hist.mean()*1000, lv.hist.count, lv.stored)
	}
	if lv.db.ok && st.completed > 0 {
		fmt.Fprintf(w, "  database    %.0f write transactions (%.1f events each), %.0f WAL bytes/event, ≈%.0f WAL syncs (%.1f events each)\n",
			lv.db.xacts, float64(st.completed)/max(lv.db.xacts, 1), lv.db.walBytes/float64(st.completed),
			lv.db.walSyncs, float64(st.completed)/max(lv.db.walSyncs, 1))
	}
	fmt.Fprintf(w, "  CPU         service %.2f cores (kernel %.2f), postgres %.2f (kernel %.2f), driver %.2f, interrupts %.2f, other %.2f; machine %.2f of %d busy\n",
		cores(lv.cpu.service, lv.wall), cores(lv.cpu.serviceSys, lv.wall), cores(lv.cpu.postgres, lv.wall),
		cores(lv.cpu.postgresSys, lv.wall), cores(lv.cpu.driver, lv.wall), cores(lv.cpu.machineIRQ, lv.wall),
		cores(lv.cpu.other(), lv.wall), cores(lv.cpu.machineBusy, lv.wall), runtime.NumCPU())
	if o := cores(lv.cpu.other(), lv.wall); o > 0.25 {
		fmt.Fprintf(w, "  WARNING     other processes and kernel threads used %.2f cores during this level (see below): unless they are\n"+
			"              kernel writeback for the WAL, the figures understate this machine\n", o)
	}
	if len(lv.cpu.top) > 0 {
		var parts []string
		for _, p := range lv.cpu.top {
			parts = append(parts, fmt.Sprintf("%s[%d] %.2f", p.comm, p.pid, cores(p.sec, lv.wall)))
		}
		fmt.Fprintf(w, "  other CPU   busiest other processes (cores): %s\n", strings.Join(parts, ", "))
	}
	if st.completed > 0 {
		per := func(sec float64) float64 { return sec / float64(st.completed) * 1e6 }
		fmt.Fprintf(w, "  CPU/event   service %.0f µs, postgres %.0f µs, driver %.0f µs\n",
			per(lv.cpu.service), per(lv.cpu.postgres), per(lv.cpu.driver))
	}
	fmt.Fprintf(w, "  memory      service VmHWM %.1f MiB (peak so far), VmRSS %.1f MiB; Go heap in use %.1f MiB, %.0f goroutines, %.0f GC cycles (%.1f ms of pauses), %.1f KiB allocated per event\n",
		kib(lv.hwmKiB), kib(lv.rssKiB), lv.heap/(1<<20), lv.gorout, lv.gc, lv.gcPause*1000, lv.alloc/1024/float64(max(st.completed, 1)))
	if len(lv.load.errKinds) > 0 {
		keys := make([]string, 0, len(lv.load.errKinds))
		for k := range lv.load.errKinds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  errors      %d × %s\n", lv.load.errKinds[k], k)
		}
	}
}

// verifyReport compares the database with the driver's ledger.
type verifyReport struct {
	acked         int
	dbEvents      int64
	dbDistinctMsg int64
	dbDistinctEvt int64
	missing       int64
	dupMsg        int64
	badEvt        int64
	mismatched    int64
	extra         int64 // stored but not acknowledged (answered non-2xx)
	completeCodes int
	foldOK        int64
	alerts        map[string]int64
	problems      []string
}

func verifyStored(ctx context.Context, url, run string, levels []*level) (*verifyReport, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	store := postgres.New(pool, nil, postgres.Config{})
	vr := &verifyReport{alerts: map[string]int64{}}
	var msgs, eids, complete []string
	seen := make(map[string]struct{})
	for _, lv := range levels {
		stagesOf := map[int64]int{}
		for _, a := range lv.load.ledger {
			if _, dup := seen[a.msgID]; dup {
				vr.problems = append(vr.problems, "driver ledger holds message "+a.msgID+" twice (driver bug)")
			}
			seen[a.msgID] = struct{}{}
			msgs, eids = append(msgs, a.msgID), append(eids, a.eventID)
			stagesOf[a.code] |= 1 << a.stage
		}
		for code, mask := range stagesOf {
			if mask == 1<<stagesPerCode-1 {
				complete = append(complete, codeID(run, lv.conc, code))
			}
		}
	}
	vr.acked = len(msgs)
	vr.completeCodes = len(complete)

	so, err := store.CountStoredOnce(ctx, msgs, eids)
	if err != nil {
		return nil, err
	}
	vr.dbEvents, vr.dbDistinctMsg, vr.dbDistinctEvt = so.Events, so.DistinctMessages, so.DistinctEvents
	vr.missing, vr.dupMsg, vr.badEvt, vr.mismatched = so.Missing, so.DuplicatedMessages, so.NotOnceByEvent, so.Mismatched
	vr.extra = vr.dbEvents - int64(vr.acked) + vr.missing
	if vr.foldOK, err = store.CountRemovedUntroubled(ctx, complete); err != nil {
		return nil, err
	}
	if vr.alerts, err = store.CountAlertsByType(ctx); err != nil {
		return nil, err
	}

	if vr.dbEvents != vr.dbDistinctMsg || vr.dbEvents != vr.dbDistinctEvt {
		vr.problems = append(vr.problems, fmt.Sprintf("events table: %d rows but %d distinct message_id and %d distinct event_id",
			vr.dbEvents, vr.dbDistinctMsg, vr.dbDistinctEvt))
	}
	if vr.missing > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d events answered 2xx are not in the database", vr.missing))
	}
	if vr.dupMsg > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d acknowledged message ids stored more than once", vr.dupMsg))
	}
	if vr.badEvt > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d acknowledged event ids not stored exactly once", vr.badEvt))
	}
	if vr.mismatched > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d acknowledged messages stored with another event id", vr.mismatched))
	}
	if vr.foldOK != int64(vr.completeCodes) {
		vr.problems = append(vr.problems, fmt.Sprintf("%d of %d codes whose whole lifecycle was acknowledged are not removed and untroubled",
			int64(vr.completeCodes)-vr.foldOK, vr.completeCodes))
	}
	if vr.acked == 0 {
		vr.problems = append(vr.problems, "no event was acknowledged")
	}
	return vr, nil
}

func printVerify(w io.Writer, vr *verifyReport) {
	fmt.Fprintf(w, "\n## exactly once\n")
	fmt.Fprintf(w, "  driver ledger: %d events answered 2xx (warm-up included)\n", vr.acked)
	fmt.Fprintf(w, "  database:      %d events, %d distinct message_id, %d distinct event_id\n",
		vr.dbEvents, vr.dbDistinctMsg, vr.dbDistinctEvt)
	fmt.Fprintf(w, "  acknowledged:  %d missing, %d duplicated by message_id, %d not once by event_id, %d with another event_id\n",
		vr.missing, vr.dupMsg, vr.badEvt, vr.mismatched)
	fmt.Fprintf(w, "  unacknowledged but stored (answered non-2xx, allowed): %d\n", vr.extra)
	fmt.Fprintf(w, "  fold: %d of %d codes with a fully acknowledged lifecycle are removed and untroubled\n", vr.foldOK, vr.completeCodes)
	keys := make([]string, 0, len(vr.alerts))
	for k := range vr.alerts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  alerts: %d %s\n", vr.alerts[k], k)
	}
	if len(vr.problems) == 0 {
		fmt.Fprintf(w, "  PASS: every acknowledged event is stored exactly once\n")
	}
}

// runPgbenchLevels runs pgbench for warmup+d at each level: pgbench has no
// warm-up of its own, and its -T clock includes connecting the clients; the
// tps it reports excludes the connection time.
func runPgbenchLevels(ctx context.Context, w io.Writer, tmp string, srv *localpg.Server, dbs *dbSampler, pmPID int, levels []*level, warmup, d time.Duration, statements bool) error {
	bin, err := pgbenchPath()
	if err != nil {
		return err
	}
	script := filepath.Join(tmp, "ingest.pgbench")
	if err := os.WriteFile(script, []byte(pgbenchScript(pgbenchBody())), 0o644); err != nil {
		return err
	}
	d += warmup
	fmt.Fprintf(w, "\n## pgbench: one event's ingest transaction per pgbench transaction (%s, -M prepared -j 2 -T %s, database codewatch)\n",
		bin, d.Round(time.Second))
	var firstErr error
	for _, lv := range levels {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		c0 := sampleCPU(0, pmPID)
		db0 := dbs.sample(ctx)
		if statements {
			dbs.resetStatements(ctx)
		}
		r, err := runPgbench(ctx, bin, script, srv.Port, "codewatch", lv.conc, d)
		db1 := dbs.sample(ctx)
		var top []string
		if statements {
			top = dbs.topStatements(ctx, 8)
		}
		// Backends of the run exit after pgbench; let the postmaster reap
		// them so their CPU is counted.
		time.Sleep(300 * time.Millisecond)
		c1 := sampleCPU(0, pmPID)
		if err != nil {
			lv.pgbError = err.Error()
			fmt.Fprintf(w, "  -c %-4d error: %v\n", lv.conc, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		lv.pgb = &r
		lv.pgbCPU = c1.sub(c0).postgres
		lv.pgbWall = c1.at.Sub(c0.at)
		ratio := lv.st.eventsPerSec / r.tps
		dd := db1.sub(db0)
		fmt.Fprintf(w, "  -c %-4d tps %.0f  latency avg %.2f ms  %d transactions, %d failed; postgres %.2f cores (%.0f µs/tx), pgbench %.2f cores; %.0f WAL bytes/tx, ≈%.1f tx/WAL sync; service/pgbench %.2f\n",
			lv.conc, r.tps, r.latencyMS, r.processed, r.failed, cores(lv.pgbCPU, lv.pgbWall), lv.pgbCPU/float64(max(r.processed, 1))*1e6,
			r.cpu/d.Seconds(), dd.walBytes/float64(max(r.processed, 1)), float64(r.processed)/max(dd.walSyncs, 1), ratio)
		printStatements(w, top)
		if r.failed > 0 && firstErr == nil {
			firstErr = fmt.Errorf("-c %d: %d failed transactions", lv.conc, r.failed)
		}
	}
	return firstErr
}

func printStatements(w io.Writer, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "  pg_stat_statements (the window, by total execution time):")
	for _, l := range lines {
		fmt.Fprintln(w, "    "+l)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func fmtInt(n float64) string {
	if math.IsNaN(n) {
		return "–"
	}
	s := strconv.FormatInt(int64(math.Round(n)), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func printSummary(w io.Writer, o *options, levels []*level, atk *attackReport, vr *verifyReport, sw *sweepReport, finalHWM int64, took time.Duration) {
	fmt.Fprintf(w, "\n## Summary (paste into the issue note / docs/operations.md)\n\n")
	fmt.Fprintf(w, "`make bench` on %d CPUs, Postgres with fsync=on and synchronous_commit=on on the same machine as the service and the load driver; closed loop, %s per level after %s warm-up; service %s.\n\n",
		runtime.NumCPU(), o.duration, o.warmup, envSummary(o.env))
	fmt.Fprintln(w, "| concurrency | events/s | p50 ms | p99 ms | errors | pgbench tps (1 tx/event) | service / pgbench | service CPU | Postgres CPU | RSS MiB peak / now |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var at *level
	for _, lv := range levels {
		tps, ratio := "–", "–"
		if lv.pgb != nil {
			tps = fmtInt(lv.pgb.tps)
			ratio = fmt.Sprintf("%.2f", lv.st.eventsPerSec/lv.pgb.tps)
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %.1f | %d | %s | %s | %.2f cores | %.2f cores | %.1f / %.1f |\n",
			lv.conc, fmtInt(lv.st.eventsPerSec), ms(lv.st.p50), ms(lv.st.p99), lv.st.errors, tps, ratio,
			cores(lv.cpu.service, lv.wall), cores(lv.cpu.postgres, lv.wall), kib(lv.hwmKiB), kib(lv.rssKiB))
		if lv.conc == targetConc {
			at = lv
		}
	}
	var other float64
	for _, lv := range levels {
		other = max(other, cores(lv.cpu.other(), lv.wall))
	}
	if other > 0.25 {
		fmt.Fprintf(w, "\nNote: processes outside the benchmark (and kernel threads) used up to %.2f of the %d cores during the levels; the figures may understate this machine.\n", other, runtime.NumCPU())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | result |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, lv := range levels {
		want, ok := targetRatios[lv.conc]
		if !ok {
			continue
		}
		if lv.pgb != nil {
			r := lv.st.eventsPerSec / lv.pgb.tps
			fmt.Fprintf(w, "| service / pgbench at concurrency %d ≥ %.1f | %.2f | %s |\n", lv.conc, want, r, passFail(r >= want))
		} else {
			fmt.Fprintf(w, "| service / pgbench at concurrency %d ≥ %.1f | not measured | – |\n", lv.conc, want)
		}
	}
	if at != nil {
		fmt.Fprintf(w, "| p99 at concurrency %d < %d ms | %.1f ms | %s |\n", targetConc, targetP99/time.Millisecond, ms(at.st.p99), passFail(at.st.p99 < targetP99))
	} else {
		fmt.Fprintf(w, "| p99 at concurrency %d | level not run | – |\n", targetConc)
	}
	var loadHWM int64
	for _, lv := range levels {
		loadHWM = max(loadHWM, lv.hwmKiB)
	}
	fmt.Fprintf(w, "| service peak RSS under the load < %d MiB | %.1f MiB | %s |\n", targetRSSKiB>>10, kib(loadHWM), passFail(loadHWM > 0 && loadHWM < targetRSSKiB))
	if atk != nil {
		fmt.Fprintf(w, "| %d forged 1 MiB uploads at once: service peak RSS < %d MiB | %.1f MiB | %s |\n",
			atk.attackers, targetAttackRSSKiB>>10, kib(atk.peakRSSKiB), passFail(atk.peakRSSKiB > 0 && atk.peakRSSKiB < targetAttackRSSKiB))
		fmt.Fprintf(w, "| meanwhile signed events: p99 < %d ms, all 2xx | p99 %.1f ms, %d of %d not 2xx | %s |\n",
			targetAttackP99/time.Millisecond, ms(atk.signed.p99), atk.signed.errors, atk.signed.started,
			passFail(atk.signed.p99 < targetAttackP99 && atk.signed.errors == 0 && atk.signed.started > 0))
	}
	if sw != nil && sw.duration > 0 {
		fmt.Fprintf(w, "| one sweep of %s codes (%s overdue) < %s | %s (%d flagged, %s) | %s |\n",
			fmtInt(float64(sw.codes)), fmtInt(float64(sw.overdue)), targetSweep, sw.duration.Round(time.Millisecond),
			sw.flagged, map[bool]string{true: "uses access_codes_unconfirmed_idx", false: "NOT using access_codes_unconfirmed_idx"}[sw.usesIndex],
			passFail(sw.duration < targetSweep && sw.ok()))
	} else if o.skipSweep {
		fmt.Fprintln(w, "| sweep < 1 s | skipped | – |")
	}
	if vr != nil {
		fmt.Fprintf(w, "| every 2xx stored exactly once | %s acknowledged, %d missing, %d duplicated | %s |\n",
			fmtInt(float64(vr.acked)), vr.missing, vr.dupMsg+vr.badEvt, passFail(len(vr.problems) == 0))
	}
	fmt.Fprintf(w, "\n(run took %s)\n", took.Round(time.Second))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}
