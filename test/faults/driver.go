package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/codewatch/codewatch/seamevent"
)

// svixTimeout is how long Svix waits for an answer before it counts the
// attempt as failed.
const svixTimeout = 15 * time.Second

// retryDelays is Svix's retry schedule (immediately, 5 s, 5 min, 30 min, 2 h,
// 5 h, 10 h, 10 h) scaled down so a run takes minutes: the first attempt is
// immediate, the retries wait these delays, the last one repeating, until the
// budget since the scheduled send time is spent.
var retryDelays = []time.Duration{
	200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
	4 * time.Second, 8 * time.Second,
}

func retryDelay(retry int) time.Duration {
	if retry < 1 {
		return 0
	}
	if retry > len(retryDelays) {
		return retryDelays[len(retryDelays)-1]
	}
	return retryDelays[retry-1]
}

// driver behaves like Svix: an open-loop sender at scheduled instants,
// retrying every message until a 2xx or the budget, with a ledger.
type driver struct {
	sender *seamevent.Sender
	budget time.Duration

	wg       sync.WaitGroup
	sent     atomic.Int64
	acked    atomic.Int64
	gaveUp   atomic.Int64
	retries  atomic.Int64
	inflight atomic.Int64
	maxIn    atomic.Int64 // most requests in flight at once

	mu         sync.Mutex
	statuses   map[int]int       // every non-2xx status seen
	netErrs    map[string]int    // attempts that got no HTTP answer, by kind
	netSample  map[string]string // one error message of each kind
	hung       int               // attempts with no answer within svixTimeout
	maxLag     time.Duration     // latest first attempt after its scheduled instant
	ackTimes   []time.Time       // when each 2xx arrived
	latencies  []time.Duration
	longest    time.Duration // longest single attempt
	attemptLog []attemptRecord
}

// attemptRecord is one attempt's end, for the timeline.
type attemptRecord struct {
	at      time.Time
	outcome string // "2xx", an HTTP status, or a network error kind
	took    time.Duration
}

func newDriver(url, secret string, budget time.Duration) *driver {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &driver{
		sender: &seamevent.Sender{URL: url, Secret: secret,
			Client: &http.Client{Timeout: svixTimeout, Transport: tr}},
		budget:    budget,
		statuses:  map[int]int{},
		netErrs:   map[string]int{},
		netSample: map[string]string{},
	}
}

// run starts every delivery at its scheduled instant; it returns once all are
// started (not finished) or ctx ends.
func (d *driver) run(ctx context.Context, dels []*delivery) {
	sort.SliceStable(dels, func(i, j int) bool { return dels[i].sched.Before(dels[j].sched) })
	for _, del := range dels {
		if w := time.Until(del.sched); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.deliver(ctx, del)
		}()
	}
}

// closeIdle closes the driver's idle keep-alive connections, as a sender
// that has nothing more to send eventually does.
func (d *driver) closeIdle() {
	if tr, ok := d.sender.Client.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// waitInflight waits, at most timeout, until at least n requests are in
// flight, so that a fault lands on work in progress.
func (d *driver) waitInflight(ctx context.Context, n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for d.inflight.Load() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return true
}

// wait waits for every started delivery to end, at most timeout.
func (d *driver) wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (d *driver) deliver(ctx context.Context, del *delivery) {
	del.started = true
	del.firstSend = time.Now()
	d.sent.Add(1)
	d.mu.Lock()
	if lag := del.firstSend.Sub(del.sched); lag > d.maxLag {
		d.maxLag = lag
	}
	d.mu.Unlock()
	for attempt := 1; ; attempt++ {
		del.attempts = attempt
		if attempt > 1 {
			d.retries.Add(1)
		}
		n := d.inflight.Add(1)
		for m := d.maxIn.Load(); n > m && !d.maxIn.CompareAndSwap(m, n); m = d.maxIn.Load() {
		}
		t0 := time.Now()
		rep, err := d.sender.Send(ctx, del.msgID, del.ev.body)
		took := time.Since(t0)
		d.inflight.Add(-1)
		now := time.Now()
		d.mu.Lock()
		if took > d.longest {
			d.longest = took
		}
		outcome := "2xx"
		switch {
		case err != nil:
			kind := netErrKind(err)
			outcome = kind
			d.netErrs[kind]++
			if _, ok := d.netSample[kind]; !ok {
				d.netSample[kind] = err.Error()
			}
			if took >= svixTimeout-100*time.Millisecond {
				d.hung++
			}
			del.lastErr = err.Error()
		case rep.Status >= 200 && rep.Status <= 299:
			d.ackTimes = append(d.ackTimes, now)
			d.latencies = append(d.latencies, now.Sub(del.sched))
		default:
			d.statuses[rep.Status]++
			outcome = strconv.Itoa(rep.Status)
			del.lastErr = http.StatusText(rep.Status) + ": " + strings.TrimSpace(string(rep.Body))
		}
		d.attemptLog = append(d.attemptLog, attemptRecord{at: now, outcome: outcome, took: took})
		d.mu.Unlock()
		if err == nil && rep.Status >= 200 && rep.Status <= 299 {
			var body struct {
				Duplicate   bool `json:"duplicate"`
				Quarantined bool `json:"quarantined"`
			}
			_ = json.Unmarshal(rep.Body, &body)
			del.acked, del.ackAt = true, now
			del.ackDuplicate, del.ackQuarantined = body.Duplicate, body.Quarantined
			d.acked.Add(1)
			return
		}
		wait := retryDelay(attempt)
		if ctx.Err() != nil || now.Add(wait).Sub(del.sched) > d.budget {
			del.gaveUp = true
			d.gaveUp.Add(1)
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			del.gaveUp = true
			d.gaveUp.Add(1)
			return
		case <-t.C:
		}
	}
}

// netErrKind names an attempt that got no HTTP answer.
func netErrKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken-pipe"
	case strings.Contains(err.Error(), "server closed idle connection"):
		return "idle-closed"
	case strings.Contains(err.Error(), "EOF"):
		return "eof"
	}
	return "other"
}

// timeline summarises attempts per step since start: how many ended each way
// and the slowest.
func (d *driver) timeline(start time.Time, step time.Duration) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	type bucket struct {
		n    map[string]int
		slow time.Duration
	}
	var bs []bucket
	for _, a := range d.attemptLog {
		i := int(a.at.Sub(start) / step)
		if i < 0 {
			i = 0
		}
		for len(bs) <= i {
			bs = append(bs, bucket{n: map[string]int{}})
		}
		bs[i].n[a.outcome]++
		if a.took > bs[i].slow {
			bs[i].slow = a.took
		}
	}
	var b strings.Builder
	for i, x := range bs {
		keys := make([]string, 0, len(x.n))
		for k := range x.n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "    t=%5.1fs", (time.Duration(i) * step).Seconds())
		for _, k := range keys {
			fmt.Fprintf(&b, " %s:%d", k, x.n[k])
		}
		fmt.Fprintf(&b, " slowest:%s\n", x.slow.Round(time.Millisecond))
	}
	return b.String()
}
