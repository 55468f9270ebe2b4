package seam

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestDeviceLimiterEvictsIdleDevices(t *testing.T) {
	l := newDeviceLimiter(20, time.Minute)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		if d := l.take(fmt.Sprintf("dev%d", i), t0); d != 0 {
			t.Fatalf("first grant waited %v", d)
		}
	}
	if l.size() != 1000 {
		t.Fatalf("size = %d", l.size())
	}
	// Inside the window nothing may go: those grants still count.
	l.take("busy", t0.Add(30*time.Second))
	if l.size() != 1001 {
		t.Fatalf("size = %d, want 1001 inside the window", l.size())
	}
	// A window later only the devices with a recent grant are kept.
	l.take("busy", t0.Add(61*time.Second))
	if l.size() != 1 {
		t.Errorf("size = %d, want 1 after the idle devices left the window", l.size())
	}
}

func TestDeviceLimiterSlidingWindow(t *testing.T) {
	l := newDeviceLimiter(3, time.Minute)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i, at := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		if d := l.take("d", t0.Add(at)); d != 0 {
			t.Fatalf("grant %d waited %v", i, d)
		}
	}
	// Full: the next slot frees when the first grant is a minute old.
	if d := l.take("d", t0.Add(30*time.Second)); d != 30*time.Second {
		t.Errorf("wait = %v, want 30s", d)
	}
	if d := l.take("d", t0.Add(time.Minute)); d != 0 {
		t.Errorf("wait at the minute = %v, want 0", d)
	}
	if d := l.take("d", t0.Add(time.Minute)); d != 10*time.Second {
		t.Errorf("wait = %v, want 10s for the second grant to age out", d)
	}
}

func TestDeviceLimiterWaitLoops(t *testing.T) {
	l := newDeviceLimiter(1, time.Minute)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		now = now.Add(d)
		return nil
	}
	for range 3 {
		if err := l.wait(context.Background(), "d", clock, sleep); err != nil {
			t.Fatal(err)
		}
	}
	if len(slept) != 2 || slept[0] != time.Minute || slept[1] != time.Minute {
		t.Errorf("slept %v, want two minutes", slept)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, "d", clock, sleep); err == nil {
		t.Error("a cancelled wait returned nil")
	}
}

func TestCodeDevicesBounded(t *testing.T) {
	c := newCodeDevices(3)
	c.put("a", "1")
	c.put("b", "2")
	c.put("a", "9") // an update does not take a second slot
	c.put("c", "3")
	c.put("d", "4") // evicts the oldest, a
	if c.get("a") != "" || c.get("b") != "2" || c.get("c") != "3" || c.get("d") != "4" {
		t.Errorf("map = %v", c.m)
	}
	c.put("", "x")
	c.put("x", "")
	if len(c.m) != 3 {
		t.Errorf("empty ids were stored: %v", c.m)
	}
}
