package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// The read benchmark's measured windows: the readers, paced or in a closed
// loop, while the ingest goes on.

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
	st.p50, _, st.p99, st.max = latencies(lat)
	st.perSec = float64(st.n) / window.Seconds()
	return st
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
