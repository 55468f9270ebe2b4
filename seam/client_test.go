package seam_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/seam"
)

const testKey = "seam_test_key_do_not_log"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// sleeper is a fake clock whose Sleep moves time on at once and records
// each wait, so tests assert on waits without spending them.
type sleeper struct {
	*clocktest.Clock
	mu    sync.Mutex
	waits []time.Duration
	hook  func(n int) // called after the n-th sleep (1-based)
}

func newSleeper() *sleeper { return &sleeper{Clock: clocktest.New(t0)} }

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	if err := s.Clock.Sleep(ctx, d); err != nil {
		return err
	}
	s.mu.Lock()
	s.waits = append(s.waits, d)
	n, hook := len(s.waits), s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return nil
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// newClient returns a client of srv on a fake clock with no global limit,
// changed by mod.
func newClient(t *testing.T, srv *httptest.Server, mod func(*seam.Config)) (*seam.Client, *sleeper) {
	t.Helper()
	clock := newSleeper()
	cfg := seam.Config{
		APIKey: testKey, BaseURL: srv.URL, RPS: math.Inf(1),
		HTTPClient: srv.Client(), Now: clock.Now, Sleep: clock.Sleep,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := seam.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, clock
}

// server answers each request with the next of answers (the last repeats)
// and counts requests.
type answer struct {
	status int
	header map[string]string
	body   string
}

func scripted(t *testing.T, answers ...answer) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		a := answers[min(i, len(answers)-1)]
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("seam-request-id", "req-"+string(rune('a'+i)))
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

const okAttempt = `{"action_attempt":{"status":"pending","action_type":"DELETE_ACCESS_CODE","action_attempt_id":"aa1","result":null,"error":null},"ok":true}`

func TestRequestShape(t *testing.T) {
	var got struct {
		method, path, auth, ctype string
		body                      map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path = r.Method, r.URL.Path
		got.auth, got.ctype = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		got.body = nil
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("seam-request-id", "req-1")
		io.WriteString(w, okAttempt)
	}))
	defer srv.Close()
	// A trailing slash on the base URL must not double up.
	c, _ := newClient(t, srv, func(cfg *seam.Config) { cfg.BaseURL = srv.URL + "/" })
	aa, err := c.DeleteAccessCode(context.Background(), "code1", "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if got.method != "POST" || got.path != "/access_codes/delete" || got.auth != "Bearer "+testKey ||
		got.ctype != "application/json" {
		t.Errorf("request = %+v", got)
	}
	if got.body["access_code_id"] != "code1" || got.body["device_id"] != "dev1" || len(got.body) != 2 {
		t.Errorf("body = %v", got.body)
	}
	if aa.ID != "aa1" || aa.Status != seam.ActionAttemptPending || aa.ActionType != "DELETE_ACCESS_CODE" ||
		aa.RequestID != "req-1" || string(aa.Result) != "null" || aa.Error != nil {
		t.Errorf("attempt = %+v", aa)
	}

	// Without a device id the body has none.
	if _, err := c.DeleteAccessCode(context.Background(), "code2", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.body["device_id"]; ok || got.body["access_code_id"] != "code2" {
		t.Errorf("body without device = %v", got.body)
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name       string
		a          answer
		status     int
		typ, msg   string
		reqID      string
		notFound   bool
		rateLimit  bool
		wantData   string
		wantInText []string
	}{
		{
			name: "seam 404",
			a: answer{404, nil, `{"error":{"type":"access_code_not_found","message":"Could not find an access_code with device_id or access_code_id",` +
				`"data":{"access_code_id":"c1"},"request_id":"body-req"},"ok":false}`},
			status: 404, typ: "access_code_not_found", msg: "Could not find an access_code with device_id or access_code_id",
			reqID: "body-req", notFound: true, wantData: "c1",
			wantInText: []string{"access_codes/get", "404", "access_code_not_found", "body-req"},
		},
		{
			name:   "fake not_found without request_id",
			a:      answer{404, nil, `{"error":{"type":"not_found","message":"Access Code Not Found","stack":"Error: ..."},"ok":false}`},
			status: 404, typ: "not_found", msg: "Access Code Not Found", reqID: "req-a", notFound: true,
		},
		{
			// Only a 404 is Seam saying a thing is not found (issue 19).
			name:   "not-found type on another status",
			a:      answer{400, nil, `{"error":{"type":"action_attempt_not_found","message":"x"},"ok":false}`},
			status: 400, typ: "action_attempt_not_found", msg: "x", reqID: "req-a",
		},
		{
			name:   "HTML 404 from a proxy",
			a:      answer{404, map[string]string{"Content-Type": "text/html"}, `<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>`},
			status: 404, msg: "Not Found", reqID: "req-a",
			wantInText: []string{"not Seam's error body", "text/html", "404 Not Found"},
		},
		{
			name:   "gateway JSON 404",
			a:      answer{404, nil, `{"message":"Not Found"}`},
			status: 404, msg: "Not Found", reqID: "req-a",
			wantInText: []string{"not Seam's error body", "JSON body without Seam's error shape"},
		},
		{
			name:   "Seam's error type without ok:false",
			a:      answer{404, nil, `{"error":{"type":"not_found","message":"Not Found"}}`},
			status: 404, typ: "not_found", msg: "Not Found", reqID: "req-a",
		},
		{
			name:   "another error type on a 404",
			a:      answer{404, nil, `{"error":{"type":"device_disconnected","message":"x"},"ok":false}`},
			status: 404, typ: "device_disconnected", msg: "x", reqID: "req-a",
		},
		{
			name:   "bad request",
			a:      answer{400, nil, `{"error":{"type":"invalid_input","message":"access_code_id is required","validation_errors":{}},"ok":false}`},
			status: 400, typ: "invalid_input", msg: "access_code_id is required", reqID: "req-a",
		},
		{
			name:   "unauthorized",
			a:      answer{401, nil, `{"error":{"type":"unauthorized","message":"API Key not found"},"ok":false}`},
			status: 401, typ: "unauthorized", msg: "API Key not found", reqID: "req-a",
		},
		{
			name:   "not JSON",
			a:      answer{403, nil, `<html>forbidden</html>`},
			status: 403, msg: "Forbidden", reqID: "req-a",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := scripted(t, tc.a)
			c, clock := newClient(t, srv, nil)
			_, err := c.GetAccessCode(context.Background(), "c1")
			var se *seam.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *seam.Error", err, err)
			}
			if se.Status != tc.status || se.Type != tc.typ || se.Message != tc.msg || se.RequestID != tc.reqID ||
				se.Route != "access_codes/get" || se.Attempts != 1 {
				t.Errorf("error = %+v", se)
			}
			if seam.IsNotFound(err) != tc.notFound || seam.IsRateLimited(err) != tc.rateLimit {
				t.Errorf("IsNotFound = %v, IsRateLimited = %v", seam.IsNotFound(err), seam.IsRateLimited(err))
			}
			if tc.wantData != "" && se.Data["access_code_id"] != tc.wantData {
				t.Errorf("data = %v", se.Data)
			}
			for _, w := range tc.wantInText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error text %q lacks %q", err, w)
				}
			}
			// 4xx other than 429 are final.
			if n.Load() != 1 || len(clock.Waits()) != 0 {
				t.Errorf("requests = %d, waits = %v; want 1 and none", n.Load(), clock.Waits())
			}
		})
	}
	if seam.IsNotFound(errors.New("404")) || seam.IsNotFound(nil) || seam.IsRateLimited(nil) {
		t.Error("plain errors are not Seam errors")
	}
}

func TestRetries5xxThenSucceeds(t *testing.T) {
	srv, n := scripted(t,
		answer{503, nil, ""},
		answer{500, nil, `{"error":{"type":"internal_server_error","message":"boom"},"ok":false}`},
		answer{502, nil, "bad gateway"},
		answer{200, nil, okAttempt},
	)
	c, clock := newClient(t, srv, func(cfg *seam.Config) {
		cfg.BaseBackoff = 100 * time.Millisecond
		cfg.MaxWait = 250 * time.Millisecond
	})
	aa, err := c.DeleteAccessCode(context.Background(), "code1", "")
	if err != nil {
		t.Fatal(err)
	}
	if aa.ID != "aa1" || aa.RequestID != "req-d" {
		t.Errorf("attempt = %+v", aa)
	}
	if n.Load() != 4 {
		t.Errorf("requests = %d, want 4", n.Load())
	}
	// Exponential with jitter in [d/2, d], capped at MaxWait.
	waits := clock.Waits()
	bounds := [][2]time.Duration{{50, 100}, {100, 200}, {125, 250}}
	if len(waits) != len(bounds) {
		t.Fatalf("waits = %v, want %d", waits, len(bounds))
	}
	for i, w := range waits {
		lo, hi := bounds[i][0]*time.Millisecond, bounds[i][1]*time.Millisecond
		if w < lo || w > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i+1, w, lo, hi)
		}
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	srv, n := scripted(t, answer{500, nil, `{"error":{"type":"internal_server_error","message":"boom"},"ok":false}`})
	c, clock := newClient(t, srv, func(cfg *seam.Config) { cfg.MaxAttempts = 3 })
	_, err := c.GetActionAttempt(context.Background(), "aa1")
	var se *seam.Error
	if !errors.As(err, &se) || se.Status != 500 || se.Attempts != 3 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error text %q does not say how many attempts", err)
	}
	if n.Load() != 3 || len(clock.Waits()) != 2 {
		t.Errorf("requests = %d, waits = %v", n.Load(), clock.Waits())
	}
}

func TestGivesUpAtMaxElapsed(t *testing.T) {
	srv, n := scripted(t, answer{503, nil, ""})
	c, _ := newClient(t, srv, func(cfg *seam.Config) {
		cfg.MaxAttempts = 100
		cfg.BaseBackoff = time.Second
		cfg.MaxWait = 4 * time.Second
		cfg.MaxElapsed = 10 * time.Second
	})
	_, err := c.GetActionAttempt(context.Background(), "aa1")
	if err == nil {
		t.Fatal("want an error")
	}
	// Waits of at most 1, 2, 4, 4 s fit in 10 s; at least 0.5, 1, 2, 2: the
	// budget ends the retries well before 100 attempts.
	if got := n.Load(); got < 3 || got > 8 {
		t.Errorf("requests = %d, want the time budget to stop them early", got)
	}
}

// Test429RetryAfter plays Seam with httptest: Seam's fake never answers 429.
func Test429RetryAfter(t *testing.T) {
	limited := `{"error":{"type":"rate_limited","message":"slow down"},"ok":false}`
	t.Run("seconds", func(t *testing.T) {
		srv, n := scripted(t, answer{429, map[string]string{"Retry-After": "7"}, limited}, answer{200, nil, okAttempt})
		c, clock := newClient(t, srv, nil)
		if _, err := c.DeleteAccessCode(context.Background(), "c1", "d1"); err != nil {
			t.Fatal(err)
		}
		if w := clock.Waits(); n.Load() != 2 || len(w) != 1 || w[0] != 7*time.Second {
			t.Errorf("requests = %d, waits = %v; want 2 and [7s]", n.Load(), w)
		}
	})
	t.Run("HTTP date", func(t *testing.T) {
		at := t0.Add(12 * time.Second).Format(http.TimeFormat)
		srv, n := scripted(t, answer{429, map[string]string{"Retry-After": at}, limited}, answer{200, nil, okAttempt})
		c, clock := newClient(t, srv, nil)
		if _, err := c.DeleteAccessCode(context.Background(), "c1", "d1"); err != nil {
			t.Fatal(err)
		}
		if w := clock.Waits(); n.Load() != 2 || len(w) != 1 || w[0] != 12*time.Second {
			t.Errorf("requests = %d, waits = %v; want 2 and [12s]", n.Load(), w)
		}
	})
	t.Run("none: backoff", func(t *testing.T) {
		srv, n := scripted(t, answer{429, nil, limited}, answer{429, nil, limited}, answer{200, nil, okAttempt})
		c, clock := newClient(t, srv, nil)
		if _, err := c.DeleteAccessCode(context.Background(), "c1", "d1"); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 3 || len(clock.Waits()) != 2 {
			t.Errorf("requests = %d, waits = %v", n.Load(), clock.Waits())
		}
	})
	t.Run("longer than MaxWait: handed to the caller", func(t *testing.T) {
		srv, n := scripted(t, answer{429, map[string]string{"Retry-After": "120"}, limited})
		c, clock := newClient(t, srv, nil)
		_, err := c.DeleteAccessCode(context.Background(), "c1", "d1")
		var se *seam.Error
		if !seam.IsRateLimited(err) || !errors.As(err, &se) || se.RetryAfter != 2*time.Minute {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), "retry after 2m0s") {
			t.Errorf("error text %q does not pass on Retry-After", err)
		}
		if n.Load() != 1 || len(clock.Waits()) != 0 {
			t.Errorf("requests = %d, waits = %v; want 1 and none", n.Load(), clock.Waits())
		}
	})
	t.Run("always limited", func(t *testing.T) {
		srv, n := scripted(t, answer{429, map[string]string{"Retry-After": "1"}, limited})
		c, _ := newClient(t, srv, nil)
		_, err := c.DeleteAccessCode(context.Background(), "c1", "d1")
		if !seam.IsRateLimited(err) || n.Load() != seam.DefaultMaxAttempts {
			t.Errorf("err = %v after %d requests", err, n.Load())
		}
	})
}

func TestRetriesTransportErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			// Drop the connection without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		io.WriteString(w, `{"access_code":{"access_code_id":"c1","device_id":"d1","code":"1234","status":"set","errors":[],"warnings":[]},"ok":true}`)
	}))
	defer srv.Close()
	c, clock := newClient(t, srv, nil)
	ac, err := c.GetAccessCode(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if ac.AccessCodeID != "c1" || n.Load() != 3 || len(clock.Waits()) != 2 {
		t.Errorf("code = %v, requests = %d, waits = %v", ac, n.Load(), clock.Waits())
	}
}

func TestAttemptTimeoutRetried(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select { // hang until the client gives up on this attempt
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, okAttempt)
	}))
	defer srv.Close()
	defer close(release)
	c, _ := newClient(t, srv, func(cfg *seam.Config) { cfg.Timeout = 50 * time.Millisecond })
	if _, err := c.GetActionAttempt(context.Background(), "aa1"); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2 {
		t.Errorf("requests = %d, want 2", n.Load())
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	srv, n := scripted(t, answer{503, nil, ""})
	ctx, cancel := context.WithCancel(context.Background())
	c, clock := newClient(t, srv, nil)
	clock.hook = func(int) { cancel() } // cancelled during the first wait
	_, err := c.GetActionAttempt(ctx, "aa1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The Seam error before the cancel is kept too.
	var se *seam.Error
	if !errors.As(err, &se) || se.Status != 503 {
		t.Errorf("err = %v, want the 503 kept", err)
	}
	if n.Load() != 1 {
		t.Errorf("requests = %d, want 1", n.Load())
	}

	// Already cancelled: nothing is sent.
	_, err = c.GetActionAttempt(ctx, "aa1")
	if !errors.Is(err, context.Canceled) || n.Load() != 1 {
		t.Errorf("err = %v, requests = %d", err, n.Load())
	}
}

func TestContextCancelWhileRateLimited(t *testing.T) {
	srv, n := scripted(t, answer{200, nil, okAttempt})
	ctx, cancel := context.WithCancel(context.Background())
	// Real clock: the second request would wait a whole minute for its
	// device; cancelling must end that wait.
	c, err := seam.New(seam.Config{APIKey: testKey, BaseURL: srv.URL, DeviceDeletesPerMinute: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteAccessCode(ctx, "c1", "d1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.DeleteAccessCode(ctx, "c2", "d1")
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait for the device limit ignored the context")
	}
	if n.Load() != 1 {
		t.Errorf("requests = %d, want 1", n.Load())
	}
}

func TestNeverLogsSecrets(t *testing.T) {
	var logs logtest.Buffer
	srv, _ := scripted(t,
		answer{503, nil, ""},
		answer{200, nil, `{"access_code":{"access_code_id":"c1","device_id":"d1","code":"987654","status":"set"},"ok":true}`},
	)
	c, _ := newClient(t, srv, func(cfg *seam.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ac, err := c.GetAccessCode(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if ac.Code != "987654" || !bytes.Contains(ac.Raw, []byte("987654")) {
		t.Fatalf("code = %q, raw = %s", ac.Code, ac.Raw)
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("caller logs", "code", ac, "config", seam.Config{APIKey: testKey})
	out := logs.String() + ac.String() + ac.GoString()
	for _, secret := range []string{testKey, "987654"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs or strings show a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), "req-b") {
		t.Errorf("logs lack the retry or the request id:\n%s", logs.String())
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, cfg := range []seam.Config{
		{},
		{APIKey: "  "},
		{APIKey: testKey, BaseURL: "connect.getseam.com"},
		{APIKey: testKey, BaseURL: "ftp://x"},
		{APIKey: testKey, RPS: -1},
		{APIKey: testKey, RPS: math.NaN()},
		{APIKey: testKey, MaxAttempts: -1},
	} {
		if _, err := seam.New(cfg); err == nil {
			t.Errorf("New(%v) accepted", cfg)
		} else if strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the key: %v", err)
		}
	}
	if _, err := seam.New(seam.Config{APIKey: testKey}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestDecodesAccessCodeAndDevice(t *testing.T) {
	code := `{"access_code_id":"c1","device_id":"d1","workspace_id":"w1","name":"Guest","code":"1234","status":"removing",` +
		`"type":"time_bound","is_managed":true,"starts_at":"2025-03-01T10:00:00.000Z","ends_at":"2025-03-02T10:00:00.000Z",` +
		`"pending_mutations":[{"mutation_code":"deleting","created_at":"2025-03-01T11:00:00.000Z"}],` +
		`"errors":[{"error_code":"failed_to_remove_from_device","message":"lock said no","created_at":"2025-03-01T11:00:01.000Z"}],` +
		`"warnings":[{"warning_code":"being_deleted","message":"going","created_at":"not a date"}],` +
		`"created_at":"2025-03-01T09:00:00.000Z","a_new_field":{"x":1}}`
	device := `{"device_id":"d1","workspace_id":"w1","device_type":"august_lock","connected_account_id":"ca1",` +
		`"properties":{"online":false,"name":"Front Door","locked":true},"errors":[{"error_code":"device_offline","message":"Device is offline"}],"warnings":[]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/access_codes/get":
			io.WriteString(w, `{"access_code":`+code+`,"ok":true}`)
		case "/devices/get":
			io.WriteString(w, `{"device":`+device+`,"ok":true}`)
		}
	}))
	defer srv.Close()
	c, _ := newClient(t, srv, nil)
	ac, err := c.GetAccessCode(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if string(ac.Raw) != code {
		t.Errorf("raw = %s", ac.Raw)
	}
	if ac.AccessCodeID != "c1" || ac.DeviceID != "d1" || ac.WorkspaceID != "w1" || ac.Name != "Guest" || ac.Code != "1234" ||
		ac.Status != "removing" || ac.Type != "time_bound" || !ac.IsManaged || ac.StartsAt == nil || ac.EndsAt == nil ||
		!ac.CreatedAt.Equal(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("code = %#v", ac)
	}
	if !bytes.Contains(ac.PendingMutations, []byte(`"deleting"`)) {
		t.Errorf("pending mutations = %s", ac.PendingMutations)
	}
	if len(ac.Errors) != 1 || ac.Errors[0].ErrorCode != "failed_to_remove_from_device" || ac.Errors[0].CreatedAt.IsZero() ||
		len(ac.Warnings) != 1 || ac.Warnings[0].WarningCode != "being_deleted" || !ac.Warnings[0].CreatedAt.IsZero() {
		t.Errorf("issues = %+v %+v", ac.Errors, ac.Warnings)
	}
	d, err := c.GetDevice(context.Background(), "d1")
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Raw) != device || d.DeviceID != "d1" || d.WorkspaceID != "w1" || d.Properties.Online ||
		d.Properties.Name != "Front Door" || len(d.Errors) != 1 || d.Errors[0].ErrorCode != "device_offline" {
		t.Errorf("device = %+v", d)
	}
}

func TestListUnmanagedFollowsPages(t *testing.T) {
	var cursors []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		cursors = append(cursors, body["page_cursor"])
		if body["device_id"] != "d1" {
			w.WriteHeader(400)
			return
		}
		switch body["page_cursor"] {
		case "":
			io.WriteString(w, `{"access_codes":[{"access_code_id":"u1","device_id":"d1","code":"1111","is_managed":false}],`+
				`"pagination":{"next_page_cursor":"p2","has_next_page":true},"ok":true}`)
		case "p2":
			io.WriteString(w, `{"access_codes":[{"access_code_id":"u2","device_id":"d1","code":"2222","is_managed":false}],`+
				`"pagination":{"next_page_cursor":null,"has_next_page":false},"ok":true}`)
		}
	}))
	defer srv.Close()
	c, _ := newClient(t, srv, nil)
	got, err := c.ListUnmanagedAccessCodes(context.Background(), "d1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].AccessCodeID != "u1" || got[1].AccessCodeID != "u2" || got[1].Code != "2222" ||
		got[0].IsManaged || len(got[1].Raw) == 0 {
		t.Errorf("codes = %v", got)
	}
	if strings.Join(cursors, ",") != ",p2" {
		t.Errorf("cursors = %q", cursors)
	}
}

func TestDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv, n := scripted(t, answer{307, map[string]string{"Location": other.URL + "/x"}, ""})
	c, err := seam.New(seam.Config{APIKey: testKey, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetAccessCode(context.Background(), "c1")
	var se *seam.Error
	if !errors.As(err, &se) || se.Status != 307 || n.Load() != 1 || elsewhere.Load() != 0 {
		t.Errorf("err = %v, requests %d here and %d elsewhere", err, n.Load(), elsewhere.Load())
	}
}

// Issue 19: a redirect is never followed, whatever client the caller gives:
// the far end's answer (here Seam's own 404) would be taken as Seam's word.
func TestRedirectsAreNotFollowed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"type":"access_code_not_found","message":"gone"},"ok":false}`)
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	for name, hc := range map[string]*http.Client{"default client": nil, "caller's client": {Timeout: 5 * time.Second}} {
		c, err := seam.New(seam.Config{APIKey: "k", BaseURL: srv.URL, HTTPClient: hc, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetAccessCode(context.Background(), "c1")
		var se *seam.Error
		if !errors.As(err, &se) || se.Status != http.StatusTemporaryRedirect || seam.IsAccessCodeNotFound(err) {
			t.Errorf("%s: %v, want the 307 itself", name, err)
		}
	}
}
