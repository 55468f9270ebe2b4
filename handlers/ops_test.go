package handlers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

func opsServer(t *testing.T, token string) *httptest.Server {
	t.Helper()
	pool := pgtest.New(t)
	store := storetest.New(t, pool, postgres.Config{})
	ops := handlers.NewOpsServer(&handlers.Ops{Store: store, Tokens: []handlers.Token{{Name: "t", Value: token}},
		Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler), Ready: func(context.Context) error { return nil }})
	srv := httptest.NewServer(ops)
	t.Cleanup(srv.Close)
	return srv
}

// Defect: the docs said a request's own X-Request-Id is echoed; the service
// always made a fresh one. A short, plain id is echoed; anything else is
// replaced.
func TestRequestIDEchoedWhenPlain(t *testing.T) {
	srv := opsServer(t, "0123456789abcdef0123")
	for _, c := range []struct {
		given string
		echo  bool
	}{
		{"req-1.2_abc", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"quote\"", false},
		{"", false},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
		if c.given != "" {
			req.Header.Set("X-Request-Id", c.given)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Request-Id")
		if c.echo && got != c.given {
			t.Errorf("X-Request-Id %q answered %q, want it echoed", c.given, got)
		}
		if !c.echo && (got == "" || got == c.given) {
			t.Errorf("X-Request-Id %q answered %q, want a fresh one", c.given, got)
		}
	}
}

// Defect: "bearer TOKEN" was refused; the scheme is case-insensitive.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	token := "0123456789abcdef0123"
	srv := opsServer(t, token)
	for auth, want := range map[string]int{
		"Bearer " + token: 200, "bearer " + token: 200, "BEARER  " + token: 200,
		"Basic " + token: 401, "Bearer": 401, "bearer wrong-token-0123456": 401,
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/summary", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
}

// Defect: logged client addresses trusted X-Forwarded-For from anyone. It is
// believed only from CODEWATCH_TRUSTED_PROXIES; otherwise the socket's
// address is logged.
func TestForwardedForTrustedOnlyFromProxies(t *testing.T) {
	v, err := verify.New([]string{pubSecret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	_, elsewhere, _ := net.ParseCIDR("10.9.0.0/16")
	for _, c := range []struct {
		trusted []*net.IPNet
		want    string
	}{
		{nil, "127.0.0.1"},
		{[]*net.IPNet{elsewhere}, "127.0.0.1"},
		{[]*net.IPNet{loopback}, "203.0.113.7"},
	} {
		logs := &logtest.Buffer{}
		e := handlers.NewPublicServer(&handlers.Public{Verifier: v, Metrics: metrics.New(),
			Logger: slog.New(slog.NewJSONHandler(logs, nil)), TrustedProxies: c.trusted})
		srv := httptest.NewServer(e)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/seam", bytes.NewReader([]byte(`{}`)))
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		if !strings.Contains(logs.String(), `"remote":"`+c.want+`"`) {
			t.Errorf("trusted %v: log %s, want remote %s", c.trusted, logs.String(), c.want)
		}
	}
}

// Defect: acknowledging twice logged and recorded again. The second is a
// no-op: 200 with the current state, the first note stands, one log line.
func TestAcknowledgeTwiceIsIdempotent(t *testing.T) {
	pool := pgtest.New(t)
	store := storetest.New(t, pool, postgres.Config{})
	logs := &logtest.Buffer{}
	token := "0123456789abcdef0123"
	ops := handlers.NewOpsServer(&handlers.Ops{Store: store, Tokens: []handlers.Token{{Name: "alice", Value: token}},
		Metrics: metrics.New(), Logger: slog.New(slog.NewJSONHandler(logs, nil)), Ready: func(context.Context) error { return nil }})
	srv := httptest.NewServer(ops)
	t.Cleanup(srv.Close)
	code := "ack-twice"
	for _, typ := range []string{"access_code.set_on_device", "access_code.deleted", "access_code.failed_to_remove_from_device"} {
		if _, err := store.Ingest(context.Background(), lifecycleDelivery(t, typ, code)); err != nil {
			t.Fatal(err)
		}
	}
	for i, note := range []string{"first look", "second look"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/access_codes/"+code+"/acknowledge", strings.NewReader(`{"note":"`+note+`"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			AccessCode struct {
				Note *string `json:"acknowledgement_note"`
			} `json:"access_code"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != 200 || out.AccessCode.Note == nil || *out.AccessCode.Note != "first look" {
			t.Fatalf("acknowledge %d: %d, note %v; want 200 and the first note", i+1, resp.StatusCode, out.AccessCode.Note)
		}
	}
	if n := strings.Count(logs.String(), `"msg":"trouble acknowledged"`); n != 1 {
		t.Fatalf("%d 'trouble acknowledged' lines, want 1:\n%s", n, logs.String())
	}
}

func lifecycleDelivery(t *testing.T, typ, code string) lifecycle.Delivery {
	t.Helper()
	return lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: event(t, typ, code)}
}

// sort is urgency or recent; a cursor works only with the sort it was made
// for, and anything else is a 400 naming the parameter.
func TestListSortAndCursors(t *testing.T) {
	token := "0123456789abcdef0123"
	srv := opsServer(t, token)
	get := func(q string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/access_codes?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for q, want := range map[string]int{
		"": 200, "sort=urgency": 200, "sort=recent": 200, "sort=oldest": 400,
		"sort=recent&cursor=" + base64url("r.5"): 200, "sort=recent&cursor=" + base64url("5"): 200,
		"sort=urgency&cursor=" + base64url("u.1.0.1700000000000000000.9"): 200,
		"sort=urgency&cursor=" + base64url("r.5"):                         400,
		"sort=recent&cursor=" + base64url("u.1.0.0.9"):                    400,
		"cursor=garbage!": 400,
	} {
		if st, body := get(q); st != want {
			t.Errorf("%q: %d %v, want %d", q, st, body, want)
		}
	}
}

func base64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
