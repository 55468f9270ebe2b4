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
	"strings"
	"sync"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/test/bench/benchseed"
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

// runReads is the read benchmark: -reads. Phases: start Postgres, seed
// (and plan the reads), start the service and the ingest, run the phases,
// then the ingest per phase, the summary's counts and the summary.
func runReads(ctx context.Context, o *options, tmp, bin string, logf func(string, ...any), fail func(string, ...any)) error {
	began := time.Now()
	pgOpts := localpg.Options{Settings: map[string]string{
		// As docs/operations.md advises: the codes and their indexes in
		// shared buffers.
		"shared_buffers": "'1GB'",
	}}
	setPGFlags(pgOpts.Settings, o.pg)
	srv, err := startPostgres(ctx, tmp, pgOpts)
	if err != nil {
		return err
	}
	defer stopPostgres(srv)
	env := &readsEnv{o: o, pmPID: postmasterPID(srv.Dir + "/data"), devices: o.readDevices}
	pgVersion, pgSettings := describePostgres(ctx, srv)
	logf("machine: %d CPUs, %s, Go %s; Postgres %s (%s)", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH,
		runtime.Version(), pgVersion, pgSettings)

	store, dataKey, existing, err := env.seed(ctx, srv, logf, fail)
	if err != nil {
		return err
	}
	defer store.Pool().Close()

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

	stop := env.startIngest(ctx, secret, existing)
	defer stop()
	logf("load: webhooks at %d events/s (open loop, signed; new codes' lifecycles and deletions of seeded active codes), "+
		"%d readers (%s), %s warm-up + %s measured per phase, each read between two phases of ingest alone; "+
		"then the same reads in a closed loop (capacity)",
		o.ingestRate, o.readers, readerMode(o, false), o.readWarmup, o.readDuration)
	phases, err := env.runPhases(ctx, logf)
	if err != nil {
		return err
	}
	// Every event due has its answer once the ingest has stopped.
	stop()
	printIngestPhases(logf, env.ingest, phases)

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

// seed migrates the database and seeds the portfolio, its bodies sealed
// with the service's data key (returned), as the service's pool plans;
// prints the plans of the reads at this size; and picks the seeded codes
// the ingest deletes. The caller closes the store's pool.
func (e *readsEnv) seed(ctx context.Context, srv *localpg.Server, logf, fail func(string, ...any)) (
	store *postgres.Store, dataKey string, existing []postgres.CodeKeys, err error) {
	o := e.o
	// The service's data key: the seeded bodies are sealed with it, so the
	// service finds none in clear to seal while the benchmark runs.
	if dataKey, err = datakeys.Generate("bench"); err != nil {
		return nil, "", nil, err
	}
	keys, err := datakeys.Parse(dataKey)
	if err != nil {
		return nil, "", nil, err
	}
	store, err = openStore(ctx, srv.URL("codewatch"), postgres.Config{RemovalTimeout: readsRemovalTimeout, QueryTimeout: 10 * time.Minute, Keys: keys})
	if err != nil {
		return nil, "", nil, err
	}
	defer func() {
		if err != nil {
			store.Pool().Close()
		}
	}()
	logf("\n## seeding %s codes on %s locks in %d workspaces", fmtInt(float64(o.readCodes)), fmtInt(float64(o.readDevices)), o.readWorkspaces)
	rep, err := benchseed.Seed(ctx, store, benchseed.Options{Codes: o.readCodes, Devices: o.readDevices, Workspaces: o.readWorkspaces,
		Sealed: true})
	if err != nil {
		return nil, "", nil, err
	}
	sizes, _ := store.TableSizes(ctx)
	logf("seeded %s codes, %s events, %s locks (codes %s, events %s, vacuum and checkpoint %s); access_codes %.0f MiB + indexes %.0f MiB, events %.0f MiB",
		fmtInt(float64(rep.Codes)), fmtInt(float64(rep.Events)), fmtInt(float64(rep.Devices)),
		rep.CodesTook.Round(time.Second), rep.EventsTook.Round(time.Second), rep.VacuumTook.Round(time.Second),
		float64(sizes.Codes)/(1<<20), float64(sizes.CodeIndexes)/(1<<20), float64(sizes.Events)/(1<<20))

	e.codes, e.events = int(rep.Codes), int(rep.Events)
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		e.codeIDs = append(e.codeIDs, benchseed.CodeID(1+r.IntN(o.readCodes)))
		e.deviceIDs = append(e.deviceIDs, benchseed.DeviceID(r.IntN(o.readDevices)))
	}

	// The plans at this size, before the load.
	logf("\n## plans at %s codes (EXPLAIN, planned as the service plans them)", fmtInt(float64(rep.Codes)))
	planProblems := explainReads(ctx, store, e, o, logf)
	for _, p := range planProblems {
		fail("plan: %s", p)
	}

	// The codes the ingest deletes: seeded active ones.
	if existing, err = activeCodes(ctx, store, 200_000); err != nil {
		return nil, "", nil, err
	}
	return store, dataKey, existing, nil
}

// startIngest starts the ingest, which runs through every phase at a fixed
// rate (open loop: latency counts from when each event was due); stop ends
// it once every event due is answered (it may be called again).
func (e *readsEnv) startIngest(ctx context.Context, secret string, existing []postgres.CodeKeys) (stop func()) {
	o := e.o
	ic := newClient(256)
	e.ingest = &ingestDriver{url: e.svc.pubURL + "/webhooks/seam", secret: secret, client: ic, run: newRunTag(),
		rate: o.ingestRate, existing: existing, devices: o.readDevices, workspaces: o.readWorkspaces,
		start: time.Now(), errs: map[string]int{}}
	stopIngest := make(chan struct{})
	ingestDone := make(chan struct{})
	go func() { e.ingest.drive(ctx, stopIngest); close(ingestDone) }()
	var stopOnce sync.Once
	return func() {
		stopOnce.Do(func() { close(stopIngest) })
		<-ingestDone
		ic.CloseIdleConnections()
	}
}

// runPhases runs the phases in turn: ingest alone before and after every
// read (the machine's speed drifts, with checkpoints and other work, and
// each read's ingest is compared with its neighbours), all reads in turn,
// then, with -read-capacity, each read in a closed loop.
func (e *readsEnv) runPhases(ctx context.Context, logf func(string, ...any)) ([]*readPhase, error) {
	alone := func() *readPhase { return &readPhase{name: "ingest only"} }
	phases := []*readPhase{alone()}
	kinds := e.kinds()
	for i := range kinds {
		phases = append(phases, &readPhase{name: kinds[i].name, kind: &kinds[i]}, alone())
	}
	phases = append(phases, &readPhase{name: "all reads in turn", mixed: true}, alone())
	if e.o.readCapacity {
		for i := range kinds {
			phases = append(phases, &readPhase{name: kinds[i].name, kind: &kinds[i], closed: true})
		}
		phases = append(phases, alone())
	}
	for _, ph := range phases {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		e.runPhase(ctx, ph, kinds)
		printReadPhase(logf, ph)
		if !e.svc.running() {
			return nil, fmt.Errorf("codewatch exited (%v); its log:\n%s", e.svc.waitErr, e.svc.logTail(20))
		}
	}
	return phases, nil
}
