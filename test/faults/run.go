package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// runScenario runs one scenario on a fresh database and service, and checks
// every invariant. Phases: set up, load (with the faults), check the
// database and the alerts, the driver's figures, stop the service.
func runScenario(ctx context.Context, h *harness, p *params, sc *scenario, rng *rand.Rand) *result {
	t0 := time.Now()
	if sc.tune != nil {
		tuned := sc.tune(*p)
		p = &tuned
	}
	res := &result{name: sc.key, statuses: map[int]int{}, netErrs: map[string]int{}, dupAnswers: map[string]int{}}
	defer func() { res.elapsed = time.Since(t0) }()
	x := &runCtx{h: h, p: p, sc: sc, res: res, dbName: "faults_" + sanitize(sc.key), logName: "codewatch-" + sc.key + ".log"}
	if !x.setUp(ctx) {
		return res
	}
	// Whatever happens below, no codewatch outlives its scenario.
	defer func() {
		if s := x.svc(); s != nil && s.running() {
			s.kill()
		}
	}()
	h.recv.take()

	codes, dels, ok := x.load(ctx, rng)
	if !ok {
		return res
	}

	conn, err := pgx.Connect(ctx, x.dbURL)
	if err != nil {
		res.fail("check: connect: %v", err)
		res.void = true
		return res
	}
	defer conn.Close(context.Background())
	if !x.check(ctx, conn, codes, dels) {
		return res
	}
	x.figures()
	x.tearDown()
	return res
}

// setUp creates the scenario's database and starts codewatch on it; false:
// the result is final (skipped here, or void).
func (x *runCtx) setUp(ctx context.Context) bool {
	h, sc, res := x.h, x.sc, x.res
	var ts string
	if sc.prepare != nil {
		var skip string
		var err error
		ts, skip, err = sc.prepare(ctx, h)
		if err != nil {
			res.fail("setup: %v", err)
			res.void = true
			return false
		}
		if skip != "" {
			res.skipped = skip
			return false
		}
	}
	var err error
	x.dbURL, err = h.createDB(ctx, x.dbName, ts)
	if err != nil {
		res.fail("setup: create database: %v", err)
		res.void = true
		return false
	}
	svc, err := h.startService(x.dbURL, x.logName)
	if err == nil {
		err = h.waitReady(ctx, svc, 60*time.Second)
	}
	if err != nil {
		res.fail("setup: start codewatch: %v\n%s", err, indent(tail(filepath.Join(h.dir, x.logName), 20)))
		res.void = true
		return false
	}
	return true
}

// load sends the planned lifecycles while the scenario injects its faults,
// and waits for every message's end; false: the run is void.
func (x *runCtx) load(ctx context.Context, rng *rand.Rand) (codes []*code, dels []*delivery, ok bool) {
	h, p, sc, res := x.h, x.p, x.sc, x.res
	x.start = time.Now().Add(300 * time.Millisecond)
	slots := uniformSlots(x.start, p.Load, p.Rate)
	if sc.extraSlots != nil {
		slots = append(slots, sc.extraSlots(p, x.start)...)
	}
	codes, dels = plan(rng, defaultMix, slots, p.Rate)
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
		return nil, nil, false
	}
	if ctx.Err() != nil {
		res.fail("interrupted")
		res.void = true
		return nil, nil, false
	}
	if s := x.svc(); s == nil || !s.running() {
		res.fail("codewatch is not running after the scenario")
		if err := x.restartService(ctx); err != nil {
			res.void = true
			return nil, nil, false
		}
	}
	return codes, dels, true
}

// check waits for the alert outbox to drain, runs the scenario's after, and
// checks the ledger, the database and the alerts received; false: the
// events could not be read, and the run ends here.
func (x *runCtx) check(ctx context.Context, conn *pgx.Conn, codes []*code, dels []*delivery) bool {
	res := x.res
	waitOutboxDrained(ctx, res, conn, x.p.AlertDrain)
	if x.sc.after != nil {
		if err := x.sc.after(ctx, x); err != nil {
			res.fail("after: %v", err)
		}
	}
	receipts, bad := x.h.recv.take()

	checkLedger(res, x.drv, dels)
	stored, err := checkStore(ctx, res, conn, dels)
	if err != nil {
		res.fail("check: %v", err)
		return false
	}
	if err := checkStates(ctx, res, conn, codes, stored); err != nil {
		res.fail("check: %v", err)
	}
	if err := checkAlerts(ctx, res, conn, codes, stored, receipts, bad, x.sc.crashy); err != nil {
		res.fail("check: %v", err)
	}
	return true
}

// figures copies the driver's figures into the result and checks the
// answers: latency, recovery after each fault, statuses, hung requests.
func (x *runCtx) figures() {
	res := x.res
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

	if x.h.verbose {
		res.note("timeline (attempts ending per second since the load began):\n%s", d.timeline(x.start, time.Second))
		x.mu.Lock()
		for _, fe := range x.faultEnds {
			res.note("fault ended at t=%.1fs", fe.Sub(x.start).Seconds())
		}
		x.mu.Unlock()
	}
}

// tearDown stops the service cleanly for the next scenario, and adds the
// end of its log to a result with violations.
func (x *runCtx) tearDown() {
	if s := x.svc(); s != nil && s.running() {
		if took, err := s.terminate(shutdownTimeout + 5*time.Second); err != nil {
			x.res.fail("final SIGTERM: %v (after %s)", err, took.Round(time.Millisecond))
		}
	}
	if len(x.res.violations) > 0 {
		x.res.note("codewatch log (last lines):\n%s", indent(tail(filepath.Join(x.h.dir, x.logName), 15)))
	}
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
