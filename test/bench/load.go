package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

// The load is a stream of access-code lifecycles. Event n of a level belongs
// to code schedule(n, w).code at lifecycle stage schedule(n, w).stage. Codes
// are taken in blocks of w (the window): the block's codes get stage 0 in
// turn, then stage 1, and so on, so two events of one code are w events
// apart. Their rows already exist when later stages arrive, histories grow
// to five events as in production, and concurrent requests rarely touch the
// same code (w is many times the concurrency), though they may, as Svix's
// parallel deliveries can.
const (
	stagesPerCode = 5
	// one code in troubleEvery gets a removal delay before its removal is
	// confirmed: a trouble alert then a resolution, through the outbox.
	troubleEvery = 50
)

// windowFor is the window at concurrency conc: wide enough that a code's
// next event is rarely in flight with its previous one, narrow enough that
// a short level completes many lifecycles.
func windowFor(conc int) int64 {
	return int64(min(max(conc*16, 256), 4096))
}

// schedule maps the n-th event of a level to its code and stage.
func schedule(n, w int64) (code int64, stage int) {
	block := n / (w * stagesPerCode)
	within := n % (w * stagesPerCode)
	return block*w + within%w, int(within / w)
}

func troubled(code int64) bool { return code%troubleEvery == 7 }

// eventType is the type of a code's stage. Every code ends removed:
//
//	normal:  created, set_on_device, lock.unlocked (the code used), deleted, removed_from_device
//	trouble: created, set_on_device, deleted, delay_in_removing_from_device, removed_from_device
func eventType(code int64, stage int) string {
	switch stage {
	case 0:
		return "access_code.created"
	case 1:
		return "access_code.set_on_device"
	case 2:
		if troubled(code) {
			return "access_code.deleted"
		}
		return "lock.unlocked"
	case 3:
		if troubled(code) {
			return "access_code.delay_in_removing_from_device"
		}
		return "access_code.deleted"
	default:
		return "access_code.removed_from_device"
	}
}

// codeID is a UUID-shaped access_code_id, distinct per run, level and code.
func codeID(run string, level int, code int64) string {
	return fmt.Sprintf("%s-%04x-4000-8000-%012x", run, level, code)
}

func deviceID(run string, code int64) string {
	return fmt.Sprintf("%s-0000-4000-9000-%012x", run, code%500)
}

// acked is one event the service answered 2xx.
type acked struct {
	msgID, eventID string
	code           int64
	stage          int8
}

// sample is one request's timing, as offsets from the level's start.
type sample struct {
	start, end time.Duration
	ok         bool
}

// driver sends signed webhooks in a closed loop.
type driver struct {
	url    string
	secret string
	run    string
	client *http.Client
}

// levelLoad is what one level's workers recorded.
type levelLoad struct {
	conc       int
	warmup     time.Duration
	measure    time.Duration
	samples    []sample
	ledger     []acked
	errKinds   map[string]int
	sentEvents int64
}

// runLevel runs conc workers for warmup+measure, each sending its next event
// as soon as the previous one is answered; no new request starts after the
// end, in-flight ones finish.
func (d *driver) runLevel(ctx context.Context, conc int, warmup, measure time.Duration) *levelLoad {
	return d.runLevelAs(ctx, conc, conc, warmup, measure)
}

// runLevelAs is runLevel with the codes named after label instead of conc, so
// that two loads of the same concurrency use distinct codes.
func (d *driver) runLevelAs(ctx context.Context, label, conc int, warmup, measure time.Duration) *levelLoad {
	var next atomic.Int64
	w := windowFor(conc)
	t0 := time.Now()
	end := t0.Add(warmup + measure)
	type workerOut struct {
		samples []sample
		ledger  []acked
		errs    map[string]int
	}
	outs := make([]workerOut, conc)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Go(func() {
			o := &outs[i]
			o.errs = map[string]int{}
			o.samples = make([]sample, 0, 4096)
			for ctx.Err() == nil && time.Now().Before(end) {
				n := next.Add(1) - 1
				code, stage := schedule(n, w)
				msgID, eventID := seamevent.NewMessageID(), seamevent.NewID()
				now := time.Now()
				body, err := seamevent.Build(eventType(code, stage), seamevent.Options{
					EventID:      eventID,
					AccessCodeID: codeID(d.run, label, code),
					DeviceID:     deviceID(d.run, code),
					OccurredAt:   now,
					Code:         fmt.Sprintf("%04d", code%10000),
				})
				if err != nil {
					o.errs["build: "+err.Error()]++
					continue
				}
				h, err := verify.Sign(d.secret, msgID, now, body)
				if err != nil {
					o.errs["sign: "+err.Error()]++
					continue
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
				if err != nil {
					o.errs["request: "+err.Error()]++
					continue
				}
				for k, v := range h {
					req.Header[k] = v
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "Svix-Webhooks/1.0 (codewatch bench)")

				start := time.Since(t0)
				resp, err := d.client.Do(req)
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				s := sample{start: start, end: time.Since(t0), ok: status >= 200 && status < 300}
				o.samples = append(o.samples, s)
				switch {
				case s.ok:
					o.ledger = append(o.ledger, acked{msgID: msgID, eventID: eventID, code: code, stage: int8(stage)})
				case err != nil:
					if ctx.Err() != nil {
						o.errs["interrupted"]++
					} else {
						o.errs[errKind(err)]++
					}
				default:
					o.errs[fmt.Sprintf("HTTP %d", status)]++
				}
			}
		})
	}
	wg.Wait()
	l := &levelLoad{conc: label, warmup: warmup, measure: measure, errKinds: map[string]int{}, sentEvents: next.Load()}
	for _, o := range outs {
		l.samples = append(l.samples, o.samples...)
		l.ledger = append(l.ledger, o.ledger...)
		for k, v := range o.errs {
			l.errKinds[k] += v
		}
	}
	return l
}

func errKind(err error) string {
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "timeout", "deadline exceeded", "EOF", "broken pipe"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// levelStats summarises the measured window of a level.
type levelStats struct {
	conc          int
	completed     int     // 2xx answers completed inside the window
	eventsPerSec  float64 // completed / window
	started       int     // requests started inside the window
	errors        int     // of those, not 2xx
	p50, p90, p99 time.Duration
	max           time.Duration
}

// stats measures throughput over requests completed inside
// [warmup, warmup+measure) and latency over requests started inside it.
func (l *levelLoad) stats() levelStats {
	st := levelStats{conc: l.conc}
	from, to := l.warmup, l.warmup+l.measure
	for _, s := range l.samples {
		if s.ok && s.end >= from && s.end < to {
			st.completed++
		}
	}
	var lat []time.Duration
	st.started, st.errors, lat = startedIn(l.samples, from, to)
	st.eventsPerSec = float64(st.completed) / l.measure.Seconds()
	st.p50, st.p90, st.p99, st.max = latencies(lat)
	return st
}

// startedIn counts the samples started in [from, to) and the failed ones
// among them, and returns the latencies of the others (unsorted).
func startedIn(samples []sample, from, to time.Duration) (started, failed int, lat []time.Duration) {
	for _, s := range samples {
		if s.start < from || s.start >= to {
			continue
		}
		started++
		if !s.ok {
			failed++
			continue
		}
		lat = append(lat, s.end-s.start)
	}
	return started, failed, lat
}

// latencies sorts lat and returns its p50, p90, p99 and maximum (0 when
// empty).
func latencies(lat []time.Duration) (p50, p90, p99, max time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		max = lat[len(lat)-1]
	}
	return percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99), max
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

// newClient is tuned so the driver is not the bottleneck: one kept-alive
// connection per worker, no compression, no proxy.
func newClient(maxConc int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        maxConc * 2,
		MaxIdleConnsPerHost: maxConc * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     16 << 10,
		ReadBufferSize:      16 << 10,
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}
