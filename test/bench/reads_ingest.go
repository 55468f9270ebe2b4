package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/test/bench/benchseed"
	"github.com/codewatch/codewatch/verify"
)

// The read benchmark's ingest: signed webhooks at a fixed rate through
// every phase.

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
	st.due, st.errors, lat = startedIn(d.samples, from, to)
	st.answered = len(lat)
	st.p50, _, st.p99, st.max = latencies(lat)
	st.perSec = float64(st.answered) / (to - from).Seconds()
	return st
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
