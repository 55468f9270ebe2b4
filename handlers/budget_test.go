package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/verify"
)

// stalled is an upload that sends part of its body and waits.
type stalled struct {
	w    *io.PipeWriter
	done chan int
}

// Defect: the handler allocated the declared Content-Length before reading or
// verifying, with no bound across requests. Now bodies take budget as their
// bytes arrive; once large uploads hold their share, the next large one is
// answered 503 with Retry-After, while Seam's small signed events are still
// stored; and the budget comes back when the uploads end.
func TestUnverifiedBodiesAreBounded(t *testing.T) {
	pool := pgtest.New(t)
	var held atomic.Int64
	budget := handlers.NewBudget(16<<20, func(n int64) { held.Store(n) })
	env := newPubEnvBudget(t, pool, budget)
	forged := func(body []byte) http.Header {
		h, err := verify.Sign("whsec_"+strings.Repeat("QUJD", 8), "msg_forged", time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	start := func(size, send int) *stalled {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, env.url(), pr)
		req.ContentLength = int64(size)
		for k, v := range forged(nil) {
			req.Header[k] = v
		}
		s := &stalled{w: pw, done: make(chan int, 1)}
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				s.done <- 0
				return
			}
			resp.Body.Close()
			s.done <- resp.StatusCode
		}()
		if _, err := pw.Write(bytes.Repeat([]byte("x"), send)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Two uploads of 1 MiB that have sent all but a byte: they hold the
	// large share (an eighth of 16 MiB).
	a, b := start(1<<20, 1<<20-1), start(1<<20, 1<<20-1)
	deadline := time.Now().Add(5 * time.Second)
	for held.Load() < 2<<20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := held.Load(); n < 2<<20 || n > 2<<20+256<<10 {
		t.Fatalf("two 1 MiB uploads hold %d bytes of budget", n)
	}
	// A third large upload is refused once it grows past the small size.
	big := bytes.Repeat([]byte("y"), 200<<10)
	req, _ := http.NewRequest(http.MethodPost, env.url(), bytes.NewReader(big))
	for k, v := range forged(big) {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"type":"overloaded"`) {
		t.Fatalf("third large upload: %d %q (Retry-After %q), want 503 overloaded", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// A real, small, signed event is stored meanwhile.
	ev := event(t, "access_code.deleted", "code-while-flooded")
	if st, out := env.post(t, ev, signed(t, "msg_while_flooded", ev)); st != http.StatusOK || out["ok"] != true {
		t.Fatalf("signed event during the flood: %d %v", st, out)
	}
	// The stalled uploads end (forged: 401) and give their budget back.
	for _, s := range []*stalled{a, b} {
		_, _ = s.w.Write([]byte("x"))
		s.w.Close()
		if st := <-s.done; st != http.StatusUnauthorized {
			t.Errorf("stalled upload ended with %d, want 401", st)
		}
	}
	if n := held.Load(); n != 0 {
		t.Fatalf("%d bytes still held after every upload ended", n)
	}
	// Unsigned uploads are refused before a byte of their body is read.
	req, _ = http.NewRequest(http.MethodPost, env.url(), bytes.NewReader(big))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || held.Load() != 0 {
		t.Fatalf("unsigned upload: %d, budget %d", resp.StatusCode, held.Load())
	}
}
