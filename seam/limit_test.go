package seam_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/seam"
)

// recorder is a Seam stand-in that notes, per device_id in the body, the
// fake-clock time each deletion arrived.
type recorder struct {
	now func() time.Time
	mu  sync.Mutex
	at  map[string][]time.Time
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body map[string]string
	_ = json.NewDecoder(req.Body).Decode(&body)
	key := body["device_id"]
	if key == "" {
		key = "code:" + body["access_code_id"]
	}
	r.mu.Lock()
	if r.at == nil {
		r.at = map[string][]time.Time{}
	}
	r.at[key] = append(r.at[key], r.now())
	r.mu.Unlock()
	if req.URL.Path == "/access_codes/get" {
		io.WriteString(w, `{"access_code":{"access_code_id":"`+body["access_code_id"]+`","device_id":"dev-of-`+body["access_code_id"]+`"},"ok":true}`)
		return
	}
	io.WriteString(w, okAttempt)
}

func (r *recorder) times(key string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := append([]time.Time(nil), r.at[key]...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

// maxInWindow is the most times falling in any half-open window of length w.
func maxInWindow(ts []time.Time, w time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

func TestDeviceLimitSequential(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, clock := newClient(t, srv, nil)
	rec.now = clock.Now
	ctx := context.Background()
	// Interleave two devices: d2 must not wait behind d1.
	for i := range 70 {
		dev := "d1"
		if i%2 == 1 {
			dev = "d2"
		}
		if _, err := c.DeleteAccessCode(ctx, "c", dev); err != nil {
			t.Fatal(err)
		}
	}
	for _, dev := range []string{"d1", "d2"} {
		ts := rec.times(dev)
		if len(ts) != 35 {
			t.Fatalf("%s: %d deletions", dev, len(ts))
		}
		if n := maxInWindow(ts, time.Minute); n != seam.DefaultDeviceDeletesPerMinute {
			t.Errorf("%s: %d deletions in one minute, want at most (and exactly) %d", dev, n, seam.DefaultDeviceDeletesPerMinute)
		}
		// The first 20 go at once, the next 15 after a minute.
		if !ts[19].Equal(t0) || ts[20].Sub(t0) < time.Minute {
			t.Errorf("%s: 20th at %v, 21st at %v", dev, ts[19].Sub(t0), ts[20].Sub(t0))
		}
	}
	// d2's first twenty went before d1 had to wait.
	if d2 := rec.times("d2"); !d2[19].Equal(t0) {
		t.Errorf("d2 waited behind d1")
	}
}

func TestDeviceLimitConcurrent(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, clock := newClient(t, srv, nil)
	rec.now = clock.Now
	const perDevice, workers = 100, 16
	devices := []string{"d1", "d2", "d3"}
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for dev := range jobs {
				if _, err := c.DeleteAccessCode(context.Background(), "c", dev); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range perDevice * len(devices) {
		jobs <- devices[i%len(devices)]
	}
	close(jobs)
	wg.Wait()
	for _, dev := range devices {
		if n := len(rec.times(dev)); n != perDevice {
			t.Errorf("%s: %d deletions, want %d", dev, n, perDevice)
		}
	}
	// 100 deletions at 20 a minute take at least four minutes whoever
	// sends them; the fake clock only ever runs ahead, so this is a floor.
	if took := clock.Now().Sub(t0); took < 4*time.Minute {
		t.Errorf("took %v of fake time, want at least 4m", took)
	}
}

func TestDeviceLimitKeyedByKnownCode(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, clock := newClient(t, srv, func(cfg *seam.Config) { cfg.DeviceDeletesPerMinute = 2 })
	rec.now = clock.Now
	ctx := context.Background()
	// Unknown code, no device id: only the global limit.
	for range 5 {
		if _, err := c.DeleteAccessCode(ctx, "unknown", ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(clock.Waits()) != 0 {
		t.Fatalf("waits = %v, want none", clock.Waits())
	}
	// Once read, the code's device keys the limit.
	if _, err := c.GetAccessCode(ctx, "known"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.DeleteAccessCode(ctx, "known", ""); err != nil {
			t.Fatal(err)
		}
	}
	if w := clock.Waits(); len(w) != 1 || w[0] != time.Minute {
		t.Errorf("waits = %v, want one of a minute", w)
	}
}

func TestGlobalRateLimit(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, clock := newClient(t, srv, func(cfg *seam.Config) { cfg.RPS = 5 })
	rec.now = clock.Now
	for range 30 {
		if _, err := c.GetActionAttempt(context.Background(), "aa"); err != nil {
			t.Fatal(err)
		}
	}
	ts := rec.times("")
	ts = append(ts, rec.times("code:")...)
	if len(ts) != 30 {
		t.Fatalf("%d requests", len(ts))
	}
	// A bucket of 5 refilling 5 a second lets at most 5 + 5 through in any
	// second, and 30 requests need at least (30-5)/5 = 5 s.
	if n := maxInWindow(ts, time.Second); n > 10 {
		t.Errorf("%d requests in one second", n)
	}
	if took := ts[len(ts)-1].Sub(ts[0]); took < 5*time.Second-time.Millisecond {
		t.Errorf("30 requests in %v at 5 a second", took)
	}
	// Unlimited: no waits at all.
	c2, clock2 := newClient(t, srv, func(cfg *seam.Config) { cfg.RPS = math.Inf(1) })
	for range 30 {
		if _, err := c2.GetActionAttempt(context.Background(), "aa"); err != nil {
			t.Fatal(err)
		}
	}
	if len(clock2.Waits()) != 0 {
		t.Errorf("unlimited client waited %v", clock2.Waits())
	}
}
