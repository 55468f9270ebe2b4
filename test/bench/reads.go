package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/test/bench/benchseed"
	"github.com/codewatch/codewatch/verify"
)

// The read benchmark (issue 15): a portfolio of a million codes and three
// million events, the real binary, webhooks ingested at a steady rate, and
// the ops reads measured from 8 concurrent readers, one read at a time:
// p50/p99 of each, and the ingest's rate and p99 with and without readers.

// Targets from issue 15, at a million codes during 1,000 events/s.
const (
	targetReadP99        = 10 * time.Millisecond
	targetIngestP99Ratio = 1.10 // ingest p99 with readers / without
	targetIngestRate     = 0.90 // ingest events/s with readers / offered (at least)
	// readsRemovalTimeout keeps the seeded deletions awaiting removal (at
	// most 90 minutes old) from turning overdue while the benchmark runs.
	readsRemovalTimeout = 2 * time.Hour
)

// readKind is one read the benchmark measures.
type readKind struct {
	name string
	// path returns the next request's path and query.
	path func(r *rand.Rand) string
	// check looks at a 200's body (nil: any).
	check func(body []byte) error
	// console: sent with the console's session cookie, not the bearer token.
	console bool
}

// readsEnv is what the phases share.
type readsEnv struct {
	o       *options
	svc     *service
	token   string
	pmPID   int
	codes   int
	events  int
	devices int
	// sample of seeded codes and locks to read
	codeIDs   []string
	deviceIDs []string
	ingest    *ingestDriver
	client    *http.Client
	console   *http.Client // with a console session
}

func (e *readsEnv) kinds() []readKind {
	pick := func(r *rand.Rand, ids []string) string { return ids[r.IntN(len(ids))] }
	// Light checks: the driver shares the machine with the service, and
	// decoding every page would cost it more than the service's encoding.
	list := func(body []byte) error {
		if !bytes.Contains(body, []byte(`"access_codes":[{"access_code_id":`)) {
			return fmt.Errorf("no codes listed")
		}
		return nil
	}
	states := url.QueryEscape(e.o.readStates)
	return []readKind{
		{name: "GET /v1/summary", path: func(*rand.Rand) string { return "/v1/summary" }, check: func(b []byte) error {
			var v struct {
				Summary struct {
					Total int64 `json:"total"`
				} `json:"summary"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			if v.Summary.Total < int64(e.codes) {
				return fmt.Errorf("total %d < %d seeded", v.Summary.Total, e.codes)
			}
			return nil
		}},
		{name: "GET /v1/access_codes?needs_troubleshooting=true", path: func(*rand.Rand) string {
			return "/v1/access_codes?needs_troubleshooting=true"
		}, check: list},
		{name: "GET /v1/access_codes?device_id=", path: func(r *rand.Rand) string {
			return "/v1/access_codes?device_id=" + pick(r, e.deviceIDs)
		}, check: list},
		{name: "GET /v1/access_codes?deletion_state=" + e.o.readStates, path: func(*rand.Rand) string {
			return "/v1/access_codes?deletion_state=" + states
		}, check: list},
		{name: "GET /v1/access_codes/{id}", path: func(r *rand.Rand) string {
			return "/v1/access_codes/" + pick(r, e.codeIDs)
		}},
		{name: "GET /v1/devices/{id}", path: func(r *rand.Rand) string {
			return "/v1/devices/" + pick(r, e.deviceIDs)
		}},
		// The console's home page: the summary and the first 50 codes
		// needing troubleshooting, rendered.
		{name: "GET /console/ (triage)", console: true, path: func(*rand.Rand) string { return "/console/" },
			check: func(b []byte) error {
				if !bytes.Contains(b, []byte("Triage")) || !bytes.Contains(b, []byte("/console/codes/")) {
					return fmt.Errorf("not the triage page with codes")
				}
				return nil
			}},
	}
}

// signIn opens a console session the way a browser does (the sign-in
// form's CSRF token, then the ops token), kept in the console client's
// cookie jar.
func (e *readsEnv) signIn(ctx context.Context) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	e.console = &http.Client{Transport: e.client.Transport, Jar: jar, Timeout: e.client.Timeout}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.svc.opsURL+"/console/signin", nil)
	resp, err := e.console.Do(req)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		return fmt.Errorf("console sign-in page: HTTP %d, no CSRF token", resp.StatusCode)
	}
	form := url.Values{"csrf": {string(m[1])}, "token": {e.token}, "next": {"/console/"}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, e.svc.opsURL+"/console/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = e.console.Do(req); err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("Triage")) {
		return fmt.Errorf("console sign-in: HTTP %d on %s", resp.StatusCode, resp.Request.URL.Path)
	}
	return nil
}

// readPhase is one measured window: the ingest alone, or with readers.
type readPhase struct {
	name    string
	kind    *readKind // nil: ingest only
	mixed   bool      // every read in turn
	closed  bool      // readers in a closed loop (capacity), not paced
	server  histogram // the service's own ingest histogram over the window
	from    time.Duration
	to      time.Duration
	reads   []sample
	errs    map[string]int
	cpu     cpuSample
	wall    time.Duration
	ingest  ingestStats
	readSt  readStats
	perKind map[string]readStats
}

type readStats struct {
	n             int
	errors        int
	perSec        float64
	p50, p99, max time.Duration
}

func readStatsOf(samples []sample, window time.Duration) readStats {
	var st readStats
	var lat []time.Duration
	for _, s := range samples {
		st.n++
		if !s.ok {
			st.errors++
			continue
		}
		lat = append(lat, s.end-s.start)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	st.p50, st.p99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if len(lat) > 0 {
		st.max = lat[len(lat)-1]
	}
	st.perSec = float64(st.n) / window.Seconds()
	return st
}

// runReads is the read benchmark: -reads.
func runReads(ctx context.Context, o *options, tmp, bin string, logf func(string, ...any), fail func(string, ...any)) error {
	began := time.Now()
	pgOpts := localpg.Options{Settings: map[string]string{
		// As docs/operations.md advises: the codes and their indexes in
		// shared buffers.
		"shared_buffers": "'1GB'",
	}}
	for _, kv := range o.pg {
		k, v, _ := strings.Cut(kv, "=")
		pgOpts.Settings[k] = "'" + strings.Trim(v, "'") + "'"
	}
	srv, err := startPostgres(ctx, tmp, pgOpts)
	if err != nil {
		return err
	}
	defer stopPostgres(srv)
	pmPID := postmasterPID(srv.Dir + "/data")
	pgVersion, pgSettings := describePostgres(ctx, srv)
	logf("machine: %d CPUs, %s, Go %s; Postgres %s (%s)", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH,
		runtime.Version(), pgVersion, pgSettings)

	// Migrate and seed, as the service's pool plans.
	pcfg, err := postgres.PoolConfig(srv.URL("codewatch"))
	if err != nil {
		return err
	}
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool, nil)
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	m.Close()
	if err != nil {
		return err
	}
	ins, err := jobs.NewInserter(pool, nil)
	if err != nil {
		return err
	}
	// The service's data key: the seeded bodies are sealed with it, so the
	// service finds none in clear to seal while the benchmark runs.
	dataKey, err := datakeys.Generate("bench")
	if err != nil {
		return err
	}
	keys, err := datakeys.Parse(dataKey)
	if err != nil {
		return err
	}
	store := postgres.New(pool, ins, postgres.Config{RemovalTimeout: readsRemovalTimeout, QueryTimeout: 10 * time.Minute, Keys: keys})
	logf("\n## seeding %s codes on %s locks in %d workspaces", fmtInt(float64(o.readCodes)), fmtInt(float64(o.readDevices)), o.readWorkspaces)
	rep, err := benchseed.Seed(ctx, store, benchseed.Options{Codes: o.readCodes, Devices: o.readDevices, Workspaces: o.readWorkspaces,
		Sealed: true})
	if err != nil {
		return err
	}
	sizes, _ := store.TableSizes(ctx)
	logf("seeded %s codes, %s events, %s locks (codes %s, events %s, vacuum and checkpoint %s); access_codes %.0f MiB + indexes %.0f MiB, events %.0f MiB",
		fmtInt(float64(rep.Codes)), fmtInt(float64(rep.Events)), fmtInt(float64(rep.Devices)),
		rep.CodesTook.Round(time.Second), rep.EventsTook.Round(time.Second), rep.VacuumTook.Round(time.Second),
		float64(sizes.Codes)/(1<<20), float64(sizes.CodeIndexes)/(1<<20), float64(sizes.Events)/(1<<20))

	env := &readsEnv{o: o, pmPID: pmPID, codes: int(rep.Codes), events: int(rep.Events), devices: o.readDevices}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		env.codeIDs = append(env.codeIDs, benchseed.CodeID(1+r.IntN(o.readCodes)))
		env.deviceIDs = append(env.deviceIDs, benchseed.DeviceID(r.IntN(o.readDevices)))
	}

	// The plans at this size, before the load.
	logf("\n## plans at %s codes (EXPLAIN, planned as the service plans them)", fmtInt(float64(rep.Codes)))
	planProblems := explainReads(ctx, store, env, o, logf)
	for _, p := range planProblems {
		fail("plan: %s", p)
	}

	// The codes the ingest deletes: seeded active ones.
	existing, err := activeCodes(ctx, store, 200_000)
	if err != nil {
		return err
	}

	secret, token := newSecret(), newToken()
	envs := append([]string{"CODEWATCH_REMOVAL_TIMEOUT=" + readsRemovalTimeout.String(), "CODEWATCH_DATA_KEYS=" + dataKey}, o.env...)
	svc, err := startService(ctx, bin, tmp, srv.URL("codewatch"), secret, token, envs)
	defer func() {
		if svc != nil && svc.running() {
			_ = svc.stop(30 * time.Second)
		}
	}()
	if err != nil {
		return err
	}
	env.svc, env.token = svc, token
	logf("\nservice: %s serve (pid %d), env CODEWATCH_REMOVAL_TIMEOUT=%s %s", o.bin, svc.pid, readsRemovalTimeout, strings.Join(o.env, " "))
	env.client = newClient(o.readers * 2)
	defer env.client.CloseIdleConnections()
	if err := env.signIn(ctx); err != nil {
		return err
	}

	// The ingest runs through every phase, at a fixed rate (open loop:
	// latency counts from when each event was due).
	ic := newClient(256)
	defer ic.CloseIdleConnections()
	env.ingest = &ingestDriver{url: svc.pubURL + "/webhooks/seam", secret: secret, client: ic, run: newRunTag(),
		rate: o.ingestRate, existing: existing, devices: o.readDevices, workspaces: o.readWorkspaces,
		start: time.Now(), errs: map[string]int{}}
	stopIngest := make(chan struct{})
	ingestDone := make(chan struct{})
	go func() { env.ingest.drive(ctx, stopIngest); close(ingestDone) }()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopIngest) }); <-ingestDone }
	defer stop()

	logf("load: webhooks at %d events/s (open loop, signed; new codes' lifecycles and deletions of seeded active codes), "+
		"%d readers (%s), %s warm-up + %s measured per phase, each read between two phases of ingest alone; "+
		"then the same reads in a closed loop (capacity)",
		o.ingestRate, o.readers, readerMode(o, false), o.readWarmup, o.readDuration)
	// Ingest alone before and after every read: the machine's speed
	// drifts (checkpoints, other work), and each read's ingest is compared
	// with its neighbours.
	alone := func() *readPhase { return &readPhase{name: "ingest only"} }
	phases := []*readPhase{alone()}
	kinds := env.kinds()
	for i := range kinds {
		phases = append(phases, &readPhase{name: kinds[i].name, kind: &kinds[i]}, alone())
	}
	phases = append(phases, &readPhase{name: "all reads in turn", mixed: true}, alone())
	if o.readCapacity {
		for i := range kinds {
			phases = append(phases, &readPhase{name: kinds[i].name, kind: &kinds[i], closed: true})
		}
		phases = append(phases, alone())
	}
	for _, ph := range phases {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		env.runPhase(ctx, ph, kinds)
		printReadPhase(logf, ph)
		if !svc.running() {
			return fmt.Errorf("codewatch exited (%v); its log:\n%s", svc.waitErr, svc.logTail(20))
		}
	}
	// Every event due has its answer once the ingest has stopped.
	stop()
	logf("\n## ingest per phase (latency from when each event was due)")
	for _, ph := range phases {
		ph.ingest = env.ingest.stats(ph.from, ph.to)
		in := ph.ingest
		name := ph.name
		if ph.closed {
			name += " (closed loop)"
		}
		logf("  %-75s %5.0f events/s (%d due, %d errors)  p50 %6.2f ms  p99 %7.2f ms  max %7.2f ms; service histogram p99 %.2f ms",
			name, in.perSec, in.due, in.errors, ms(in.p50), ms(in.p99), ms(in.max), ph.server.quantile(0.99)*1000)
	}
	errKinds := make([]string, 0, len(env.ingest.errs))
	for k := range env.ingest.errs {
		errKinds = append(errKinds, k)
	}
	sort.Strings(errKinds)
	for _, k := range errKinds {
		logf("  ingest errors: %d × %s", env.ingest.errs[k], k)
	}

	// The counts the summary keeps, against a count of the codes, after
	// the load (the last changes folded or not).
	if msg, err := checkSummaryCounts(ctx, env, store); err != nil {
		fail("summary counts: %v", err)
	} else {
		logf("\n%s", msg)
	}
	logf("%s", svc.logSummary(5))
	printReadsSummary(logf, o, env, phases, time.Since(began))
	return nil
}

func readerMode(o *options, closed bool) string {
	if closed || o.readInterval <= 0 {
		return "closed loop: each sends its next request as soon as the previous is answered"
	}
	return fmt.Sprintf("each starts a request every %s, %.0f reads/s in all; latency counts from when it was due",
		o.readInterval, float64(o.readers)*float64(time.Second)/float64(o.readInterval))
}

// runPhase runs the readers (if any) for warm-up + measure while the
// ingest goes on, and collects both.
func (e *readsEnv) runPhase(ctx context.Context, ph *readPhase, kinds []readKind) {
	warm, measure := e.o.readWarmup, e.o.readDuration
	t0 := time.Now()
	ph.from = e.ingest.since(t0.Add(warm))
	ph.to = ph.from + measure
	ph.errs = map[string]int{}
	var c0 cpuSample
	var mu sync.Mutex
	per := map[string][]sample{}
	var wg sync.WaitGroup
	end := t0.Add(warm + measure)
	interval := e.o.readInterval
	if ph.closed {
		interval = 0
	}
	if ph.kind != nil || ph.mixed {
		for i := range e.o.readers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(i), uint64(t0.UnixNano())))
				var mine []sample
				mineKind := map[string][]sample{}
				errs := map[string]int{}
				// Paced readers start out of step.
				next := time.Now().Add(time.Duration(i) * interval / time.Duration(e.o.readers))
				for n := i; ctx.Err() == nil; n++ {
					if interval > 0 {
						sleepUntil(ctx, next)
					}
					due := time.Now()
					if interval > 0 {
						due = next
						next = next.Add(interval)
					}
					if due.After(end) {
						break
					}
					k := ph.kind
					if ph.mixed {
						k = &kinds[n%len(kinds)]
					}
					ok, why := e.get(ctx, k, r)
					s := sample{start: due.Sub(t0), end: time.Since(t0), ok: ok}
					if s.start >= warm {
						mine = append(mine, s)
						mineKind[k.name] = append(mineKind[k.name], s)
						if !ok {
							errs[why]++
						}
					}
				}
				mu.Lock()
				ph.reads = append(ph.reads, mine...)
				for k, v := range mineKind {
					per[k] = append(per[k], v...)
				}
				for k, v := range errs {
					ph.errs[k] += v
				}
				mu.Unlock()
			})
		}
	}
	mc := newClient(1)
	defer mc.CloseIdleConnections()
	sleepUntil(ctx, t0.Add(warm))
	c0 = sampleCPU(e.svc.pid, e.pmPID)
	m0, err0 := scrape(ctx, mc, e.svc.opsURL+"/metrics")
	sleepUntil(ctx, end)
	c1 := sampleCPU(e.svc.pid, e.pmPID)
	m1, err1 := scrape(ctx, mc, e.svc.opsURL+"/metrics")
	wg.Wait()
	ph.cpu, ph.wall = c1.sub(c0), c1.at.Sub(c0.at)
	if err0 == nil && err1 == nil {
		ph.server = histogramOf(m1, ingestHistogram).sub(histogramOf(m0, ingestHistogram))
	}
	ph.readSt = readStatsOf(ph.reads, measure)
	if ph.mixed {
		ph.perKind = map[string]readStats{}
		for k, v := range per {
			ph.perKind[k] = readStatsOf(v, measure)
		}
	}
}

// get sends one read and reports whether it was answered 200 with a body
// that passes the kind's check.
func (e *readsEnv) get(ctx context.Context, k *readKind, r *rand.Rand) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.svc.opsURL+k.path(r), nil)
	if err != nil {
		return false, err.Error()
	}
	client := e.client
	if k.console {
		client = e.console
	} else {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, "interrupted"
		}
		return false, errKind(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, errKind(err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	if k.check != nil {
		if err := k.check(body); err != nil {
			return false, "bad body: " + err.Error()
		}
	}
	return true, ""
}

// explainReads prints the plan of every statement the measured reads run
// and returns what is wrong with them: a sequential scan, or a list
// segment that sorts more than a page of rows.
func explainReads(ctx context.Context, store *postgres.Store, env *readsEnv, o *options, logf func(string, ...any)) []string {
	yes := true
	var states []lifecycle.DeletionState
	for _, s := range strings.Split(o.readStates, ",") {
		states = append(states, lifecycle.DeletionState(strings.TrimSpace(s)))
	}
	type read struct {
		name    string
		explain func() ([]postgres.Plan, error)
	}
	reads := []read{
		{"summary", func() ([]postgres.Plan, error) { return store.ExplainSummary(ctx) }},
		{"needs_troubleshooting=true", func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{NeedsTroubleshooting: &yes})
		}},
		{"device_id=", func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{DeviceID: env.deviceIDs[0]})
		}},
		{"deletion_state=" + o.readStates, func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{States: states})
		}},
		{"console home (the summary above, and)", func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{NeedsTroubleshooting: &yes, Limit: 200})
		}},
		{"access code", func() ([]postgres.Plan, error) { return store.ExplainGetAccessCode(ctx, env.codeIDs[0]) }},
		{"device", func() ([]postgres.Plan, error) { return store.ExplainGetDevice(ctx, env.deviceIDs[0]) }},
	}
	var problems []string
	for _, r := range reads {
		plans, err := r.explain()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", r.name, err))
			continue
		}
		for _, p := range plans {
			logf("%s, %s:\n%s", r.name, p.Read, indent(p.Plan))
			// code_counts is read whole on purpose (a few pages).
			if strings.Contains(strings.ReplaceAll(p.Plan, "Seq Scan on code_counts", ""), "Seq Scan") {
				problems = append(problems, fmt.Sprintf("%s, %s: a sequential scan", r.name, p.Read))
			}
			if strings.HasPrefix(p.Read, "list") && sortsMoreThan(p.Plan, lifecycle.MaxListLimit+1) {
				problems = append(problems, fmt.Sprintf("%s, %s: sorts more rows than a page", r.name, p.Read))
			}
		}
	}
	return problems
}

// sortsMoreThan reports a Sort node whose input the planner expects to be
// larger than n rows (the line under the Sort).
func sortsMoreThan(plan string, n int) bool {
	lines := strings.Split(plan, "\n")
	for i, l := range lines {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->"))
		if !strings.HasPrefix(t, "Sort ") || strings.HasPrefix(t, "Sort Key") {
			continue
		}
		for _, below := range lines[i+1:] {
			b := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(below), "->"))
			if strings.HasPrefix(b, "Sort Key") || strings.HasPrefix(b, "Sort Method") {
				continue
			}
			if rows := planRows(b); rows > n {
				return true
			}
			break
		}
	}
	return false
}

// planRows reads the estimated rows of a plan line ("rows=123").
func planRows(line string) int {
	_, after, ok := strings.Cut(line, "rows=")
	if !ok {
		return 0
	}
	var n int
	fmt.Sscanf(after, "%d", &n)
	return n
}

// activeCodes samples up to n seeded active codes with their lock and
// workspace, for the ingest to delete.
func activeCodes(ctx context.Context, store *postgres.Store, n int) ([]postgres.CodeKeys, error) {
	out, err := store.SampleActiveCodes(ctx, n)
	if err != nil {
		return nil, err
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// checkSummaryCounts compares the summary the service answers with a count
// of the codes, once the ingest has stopped.
func checkSummaryCounts(ctx context.Context, e *readsEnv, store *postgres.Store) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.svc.opsURL+"/v1/summary", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		Summary lifecycle.StatusSummary `json:"summary"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	got := v.Summary
	t := time.Now()
	counted, needs, err := store.CountCodesByState(ctx)
	if err != nil {
		return "", err
	}
	var total int64
	for _, n := range counted {
		total += n
	}
	took := time.Since(t)
	for _, st := range lifecycle.States {
		if got.DeletionStates[st] != counted[st] {
			return "", fmt.Errorf("%s: summary %d, counted %d", st, got.DeletionStates[st], counted[st])
		}
	}
	if got.Total != total || got.NeedsTroubleshooting != needs {
		return "", fmt.Errorf("total %d / needs %d, counted %d / %d", got.Total, got.NeedsTroubleshooting, total, needs)
	}
	return fmt.Sprintf("summary counts after the load equal a count of the codes: %s codes, %s needing troubleshooting (counting them took %s)",
		fmtInt(float64(total)), fmtInt(float64(needs)), took.Round(time.Millisecond)), nil
}

// ingestDriver sends signed webhooks at a fixed rate: the n-th event is
// due at start + n/rate, whatever happened to the ones before. Even codes
// of the schedule are new codes on the seeded locks (created, set on the
// lock, used, deleted, removed; one in 50 delayed first), odd ones seeded
// active codes (changed, used, deleted, then delayed for one in 50 or its
// lock reports connected, removed).
type ingestDriver struct {
	url, secret, run string
	client           *http.Client
	rate             int
	existing         []postgres.CodeKeys // seeded codes the ingest deletes
	devices          int
	workspaces       int

	start   time.Time
	mu      sync.Mutex
	samples []sample // start = when due
	errs    map[string]int
	sent    atomic.Int64
}

func (d *ingestDriver) since(t time.Time) time.Duration { return t.Sub(d.start) }

// ingestWindow spaces a code's events (see schedule).
const ingestWindow = 512

// drive sends until stop closes (the events already due are sent and
// answered) or ctx ends; start is set.
func (d *ingestDriver) drive(ctx context.Context, stop <-chan struct{}) {
	interval := time.Second / time.Duration(d.rate)
	jobs := make(chan int64, 4096)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for n := range jobs {
				d.send(ctx, n, d.start.Add(time.Duration(n)*interval))
			}
		})
	}
loop:
	for n := int64(0); ; n++ {
		due := d.start.Add(time.Duration(n) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-stop:
				break loop
			case <-ctx.Done():
				break loop
			case <-time.After(wait):
			}
		}
		select {
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		case jobs <- n:
		}
	}
	close(jobs)
	wg.Wait()
}

// event is the n-th event of the schedule.
func (d *ingestDriver) event(n int64) (string, seamevent.Options) {
	code, stage := schedule(n, ingestWindow)
	troubled := troubled(code / 2)
	// Each seeded code once: one deleted before would be used after its
	// deletion, on the second pass. Past them, only new codes.
	if code%2 == 0 || int(code/2) >= len(d.existing) {
		dev := int(uint64(code/2*2654435761) % uint64(d.devices))
		return eventType(code/2, stage), seamevent.Options{
			AccessCodeID:       codeID(d.run, 0, code/2),
			DeviceID:           benchseed.DeviceID(dev),
			WorkspaceID:        benchseed.WorkspaceID(dev, d.workspaces),
			ConnectedAccountID: benchseed.AccountID(dev, d.workspaces),
			Code:               fmt.Sprintf("%06d", code%1_000_000),
		}
	}
	c := d.existing[code/2]
	// Six digits: a lock's codes rarely share a PIN, as on real locks (an
	// unlock with a deleted code's PIN on its lock is that code's use).
	o := seamevent.Options{AccessCodeID: c.AccessCodeID, DeviceID: c.DeviceID, WorkspaceID: c.WorkspaceID, ConnectedAccountID: c.ConnectedAccountID,
		Code: fmt.Sprintf("%06d", code%1_000_000)}
	switch stage {
	case 0:
		return "access_code.changed", o
	case 1:
		return lifecycle.TypeLockUnlocked, o
	case 2:
		return lifecycle.TypeDeleted, o
	case 3:
		if troubled {
			return lifecycle.TypeDelayInRemoving, o
		}
		o.AccessCodeID = ""
		return "device.connected", o
	}
	return lifecycle.TypeRemovedFromDevice, o
}

func (d *ingestDriver) send(ctx context.Context, n int64, due time.Time) {
	typ, opts := d.event(n)
	opts.EventID, opts.OccurredAt = seamevent.NewID(), time.Now()
	body, err := seamevent.Build(typ, opts)
	ok, why := false, ""
	if err == nil {
		msgID := seamevent.NewMessageID()
		var h http.Header
		if h, err = verify.Sign(d.secret, msgID, opts.OccurredAt, body); err == nil {
			var req *http.Request
			if req, err = http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body)); err == nil {
				for k, v := range h {
					req.Header[k] = v
				}
				req.Header.Set("Content-Type", "application/json")
				var resp *http.Response
				if resp, err = d.client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
					if !ok {
						why = fmt.Sprintf("HTTP %d", resp.StatusCode)
					}
				}
			}
		}
	}
	if err != nil {
		why = errKind(err)
		if ctx.Err() != nil {
			why = "interrupted"
		}
	}
	d.sent.Add(1)
	s := sample{start: due.Sub(d.start), end: time.Since(d.start), ok: ok}
	d.mu.Lock()
	d.samples = append(d.samples, s)
	if !ok {
		d.errs[why]++
	}
	d.mu.Unlock()
}

// ingestStats is the ingest over a window of due times.
type ingestStats struct {
	due, answered, errors int
	perSec                float64
	p50, p99, max         time.Duration
}

// stats summarises the events due in [from, to): their rate answered 200
// and their latency from when they were due.
func (d *ingestDriver) stats(from, to time.Duration) ingestStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st ingestStats
	var lat []time.Duration
	for _, s := range d.samples {
		if s.start < from || s.start >= to {
			continue
		}
		st.due++
		if !s.ok {
			st.errors++
			continue
		}
		st.answered++
		lat = append(lat, s.end-s.start)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	st.p50, st.p99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if len(lat) > 0 {
		st.max = lat[len(lat)-1]
	}
	st.perSec = float64(st.answered) / (to - from).Seconds()
	return st
}

func printReadPhase(logf func(string, ...any), ph *readPhase) {
	if ph.closed {
		logf("\n## %s (closed loop)", ph.name)
	} else {
		logf("\n## %s", ph.name)
	}
	if ph.kind != nil || ph.mixed {
		st := ph.readSt
		logf("  reads       %d (%.0f/s), %d errors; p50 %.2f ms  p99 %.2f ms  max %.2f ms", st.n, st.perSec, st.errors,
			ms(st.p50), ms(st.p99), ms(st.max))
		for k, v := range ph.errs {
			logf("  errors      %d × %s", v, k)
		}
		keys := make([]string, 0, len(ph.perKind))
		for k := range ph.perKind {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := ph.perKind[k]
			logf("    %-60s p50 %.2f ms  p99 %.2f ms (%d)", k, ms(v.p50), ms(v.p99), v.n)
		}
	}
	if ph.server.count > 0 {
		logf("  server      ingest histogram: p50 %.2f ms  p99 %.2f ms over %.0f deliveries",
			ph.server.quantile(0.5)*1000, ph.server.quantile(0.99)*1000, ph.server.count)
	}
	logf("  CPU         service %.2f cores, postgres %.2f, driver %.2f, other %.2f; machine %.2f of %d busy",
		cores(ph.cpu.service, ph.wall), cores(ph.cpu.postgres, ph.wall), cores(ph.cpu.driver, ph.wall),
		cores(ph.cpu.other(), ph.wall), cores(ph.cpu.machineBusy, ph.wall), runtime.NumCPU())
	if len(ph.cpu.top) > 0 && cores(ph.cpu.other(), ph.wall) > 0.25 {
		var parts []string
		for _, p := range ph.cpu.top {
			parts = append(parts, fmt.Sprintf("%s[%d] %.2f", p.comm, p.pid, cores(p.sec, ph.wall)))
		}
		logf("  other CPU   %s", strings.Join(parts, ", "))
	}
}

// neighbours returns the ingest-only phases just before and after phase i.
func neighbours(phases []*readPhase, i int) []*readPhase {
	var out []*readPhase
	if i > 0 && phases[i-1].kind == nil && !phases[i-1].mixed {
		out = append(out, phases[i-1])
	}
	if i+1 < len(phases) && phases[i+1].kind == nil && !phases[i+1].mixed {
		out = append(out, phases[i+1])
	}
	return out
}

func meanP99(ps []*readPhase) time.Duration {
	if len(ps) == 0 {
		return 0
	}
	var sum time.Duration
	for _, p := range ps {
		sum += p.ingest.p99
	}
	return sum / time.Duration(len(ps))
}

func printReadsSummary(logf func(string, ...any), o *options, e *readsEnv, phases []*readPhase, took time.Duration) {
	logf("\n## Summary (paste into the issue note / docs/operations.md)\n")
	logf("`make bench-reads` on %d CPUs: %s codes and %s events on %s locks, Postgres 15 (fsync on, shared_buffers 1GB), "+
		"service and load driver on one machine; signed webhooks at %d events/s throughout (latency from when each was due); "+
		"%d readers (%s), one read at a time, %s per row after %s warm-up, each between two windows of ingest alone.\n",
		runtime.NumCPU(), fmtInt(float64(e.codes)), fmtInt(float64(e.events)), fmtInt(float64(o.readDevices)), o.ingestRate,
		o.readers, readerMode(o, false), o.readDuration, o.readWarmup)
	header := func() {
		logf("| read | reads/s | p50 ms | p99 ms | ingest events/s | ingest p99 ms | without readers (before, after) | service CPU | Postgres CPU | other CPU |")
		logf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	}
	row := func(i int) {
		ph := phases[i]
		in, st := ph.ingest, ph.readSt
		errs := ""
		if st.errors > 0 {
			errs = fmt.Sprintf(" (%d errors)", st.errors)
		}
		var nb []string
		for _, n := range neighbours(phases, i) {
			nb = append(nb, fmt.Sprintf("%.1f", ms(n.ingest.p99)))
		}
		logf("| %s | %s%s | %.1f | %.1f | %s | %.1f | %s | %.2f | %.2f | %.2f |", ph.name, fmtInt(st.perSec), errs, ms(st.p50), ms(st.p99),
			fmtInt(in.perSec), ms(in.p99), strings.Join(nb, ", "), cores(ph.cpu.service, ph.wall), cores(ph.cpu.postgres, ph.wall),
			cores(ph.cpu.other(), ph.wall))
	}
	reads := func(closed bool) []int {
		var out []int
		for i, ph := range phases {
			if (ph.kind != nil || ph.mixed) && ph.closed == closed {
				out = append(out, i)
			}
		}
		return out
	}
	header()
	for _, i := range reads(false) {
		row(i)
	}
	var alone []*readPhase
	for _, ph := range phases {
		if ph.kind == nil && !ph.mixed {
			alone = append(alone, ph)
		}
	}
	var cs, cp, co float64
	var wall time.Duration
	for _, ph := range alone {
		cs, cp, co, wall = cs+ph.cpu.service, cp+ph.cpu.postgres, co+ph.cpu.other(), wall+ph.wall
	}
	logf("| (ingest alone, %d windows) | – | – | – | %s | %.1f (mean) | – | %.2f | %.2f | %.2f |", len(alone),
		fmtInt(float64(o.ingestRate)), ms(meanP99(alone)), cores(cs, wall), cores(cp, wall), cores(co, wall))
	if o.readCapacity {
		logf("\nCapacity: the same reads with the %d readers in a closed loop (each sends its next request as soon as the previous "+
			"is answered). The machine's two cores are then busy; the service admits a few reads to Postgres at once "+
			"(2 with the default settings) and the others wait their turn, but ingest competes with them for the cores.\n", o.readers)
		header()
		for _, i := range reads(true) {
			row(i)
		}
	}
	logf("\n| target (paced readers) | measured | result |")
	logf("|---|---|---|")
	for _, i := range reads(false) {
		st := phases[i].readSt
		logf("| %s: p99 < %d ms | %.1f ms (%d errors) | %s |", phases[i].name, targetReadP99/time.Millisecond, ms(st.p99), st.errors,
			passFail(st.p99 < targetReadP99 && st.errors == 0 && st.n > 0))
	}
	for _, i := range reads(false) {
		in := phases[i].ingest
		base := meanP99(neighbours(phases, i))
		ratio := float64(in.p99) / float64(max(base, 1))
		rate := in.perSec / float64(o.ingestRate)
		logf("| ingest during %s: ≥ %.0f%% of %d/s answered, p99 within 10%% of ingest alone around it (%.1f ms) | %s events/s, p99 %.1f ms (×%.2f) | %s |",
			phases[i].name, targetIngestRate*100, o.ingestRate, ms(base), fmtInt(in.perSec), ms(in.p99), ratio,
			passFail(ratio <= targetIngestP99Ratio && rate >= targetIngestRate && in.errors == 0))
	}
	logf("\n(run took %s)", took.Round(time.Second))
}

// startPostgres starts the benchmark's Postgres under tmp.
func startPostgres(ctx context.Context, tmp string, opts localpg.Options) (*localpg.Server, error) {
	srv, err := localpg.Start(ctx, tmp+"/pg", opts)
	if err != nil {
		if pid := postmasterPID(tmp + "/pg/data"); pid > 0 {
			_ = killPID(pid)
		}
		return nil, fmt.Errorf("start Postgres: %w", err)
	}
	return srv, nil
}

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGINT) }

func stopPostgres(srv *localpg.Server) {
	if err := srv.Stop("fast"); err != nil {
		_ = srv.Kill()
	}
}
