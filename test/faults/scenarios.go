package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
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

// faultScenario is a scenario that, at each of the load's fault times
// (a wave of messages in flight at each), strikes with fault, keeps the
// fault up for pause and ends it with end. Each of these faults can cut an
// alert's delivery short (crashy).
func faultScenario(key, title string, pause func(p *params) time.Duration, fault, end func(context.Context, *runCtx) error) *scenario {
	return &scenario{key: key, title: title, crashy: true,
		extraSlots: faultWaves(pause), inject: faultCycle(pause, fault, end)}
}

// faultCycle is an inject that, at each of the load's fault times, strikes
// with fault, keeps the fault up for pause, and ends it with end.
func faultCycle(pause func(p *params) time.Duration, fault, end func(ctx context.Context, x *runCtx) error) func(context.Context, *runCtx) error {
	return func(ctx context.Context, x *runCtx) error {
		for _, at := range faultTimes(x.p, x.start, pause(x.p)) {
			if err := strike(ctx, x, at); err != nil {
				return err
			}
			if err := fault(ctx, x); err != nil {
				return err
			}
			if err := sleepUntil(ctx, time.Now().Add(pause(x.p))); err != nil {
				return err
			}
			x.faultEnded(time.Now())
			if err := end(ctx, x); err != nil {
				return err
			}
		}
		return nil
	}
}

// wrapErr says what failed, or is nil.
func wrapErr(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// scenarios are the suite's scenarios, in the order they run: each kind of
// fault in a file of its own (scenarios_codewatch.go, scenarios_postgres.go,
// scenarios_load.go).
func scenarios() []*scenario {
	return []*scenario{
		{key: "baseline", title: "no fault: the same load, for comparison",
			extraSlots: faultWaves(func(p *params) time.Duration { return p.KillPause })},
		kill9Scenario(),
		pgStopScenario(),
		pgKillScenario(),
		sigtermScenario(),
		poolScenario(),
		pgFreezeScenario(),
		burstScenario(),
		pgReadOnlyScenario(),
		diskFullScenario(),
	}
}
