package seam

import (
	"context"
	"sync"
	"time"
)

// deviceLimiter keeps Seam's per-device limit: at most n requests for one
// device in any window. It keeps the times of the last n grants per device
// (a sliding log) rather than a token bucket: a bucket of n refilling n per
// window lets nearly 2n through in one window, which Seam would refuse.
type deviceLimiter struct {
	n      int
	window time.Duration

	mu        sync.Mutex
	devices   map[string]*grants
	lastSweep time.Time
}

// grants are the times of a device's recent grants, oldest first, at most n.
type grants struct{ times []time.Time }

func newDeviceLimiter(n int, window time.Duration) *deviceLimiter {
	return &deviceLimiter{n: n, window: window, devices: make(map[string]*grants)}
}

// wait returns once key may send a request, or when ctx ends. It never
// fails for being over the limit: it waits.
func (l *deviceLimiter) wait(ctx context.Context, key string, now func() time.Time, sleep func(context.Context, time.Duration) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := l.take(key, now())
		if d <= 0 {
			return nil
		}
		// Someone else may take the freed slot first; then wait again.
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// take records a grant for key at t and returns 0, or returns how long until
// the oldest grant in the window expires.
func (l *deviceLimiter) take(key string, t time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(t)
	g := l.devices[key]
	if g == nil {
		g = &grants{times: make([]time.Time, 0, l.n)}
		l.devices[key] = g
	}
	g.expire(t, l.window)
	if len(g.times) < l.n {
		g.times = append(g.times, t)
		return 0
	}
	return g.times[0].Add(l.window).Sub(t)
}

// sweep drops devices with no grant inside the window, at most once per
// window, so that a long-running client deleting on many devices holds
// state only for the devices of the last minute.
func (l *deviceLimiter) sweep(t time.Time) {
	if t.Sub(l.lastSweep) < l.window {
		return
	}
	l.lastSweep = t
	for k, g := range l.devices {
		if g.expire(t, l.window); len(g.times) == 0 {
			delete(l.devices, k)
		}
	}
}

// expire drops grants that left the window ending at t.
func (g *grants) expire(t time.Time, window time.Duration) {
	i := 0
	for i < len(g.times) && !g.times[i].Add(window).After(t) {
		i++
	}
	if i > 0 {
		g.times = g.times[:copy(g.times, g.times[i:])]
	}
}

// size is how many devices the limiter holds state for.
func (l *deviceLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.devices)
}

// codeDevices remembers which device an access code is on, from codes the
// client has read, so that a deletion without a device id can still be
// held to its device's limit. Bounded: the oldest entry goes first.
type codeDevices struct {
	mu    sync.Mutex
	cap   int
	m     map[string]string
	order []string
	next  int
}

func newCodeDevices(capacity int) *codeDevices {
	return &codeDevices{cap: capacity, m: make(map[string]string, capacity)}
}

func (c *codeDevices) put(code, device string) {
	if code == "" || device == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[code]; ok {
		c.m[code] = device
		return
	}
	if len(c.order) < c.cap {
		c.order = append(c.order, code)
	} else {
		delete(c.m, c.order[c.next])
		c.order[c.next] = code
		c.next = (c.next + 1) % c.cap
	}
	c.m[code] = device
}

func (c *codeDevices) get(code string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[code]
}
