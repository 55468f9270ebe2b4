package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/migrations"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/internal/seamtest"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/proof"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/seamsync"
	"github.com/codewatch/codewatch/verify"
)

const oaSpecPath = "../docs/openapi.yaml"

// The spec names each listener by its default address in servers.
const (
	oaPublicURL = "http://localhost:8080"
	oaOpsURL    = "http://127.0.0.1:9090"
)

func oaLoadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(oaSpecPath)
	if err != nil {
		t.Fatalf("load %s: %v", oaSpecPath, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", oaSpecPath, err)
	}
	return doc
}

// oaSpecListeners returns, per listener ("public", "ops"), the set of
// "METHOD /path/{param}" the spec documents there.
func oaSpecListeners(t *testing.T, doc *openapi3.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		servers := doc.Servers
		if len(item.Servers) > 0 {
			servers = item.Servers
		}
		for _, s := range servers {
			var l string
			switch s.URL {
			case oaPublicURL:
				l = "public"
			case oaOpsURL:
				l = "ops"
			default:
				t.Fatalf("path %s: server %q is neither listener (%s, %s)", path, s.URL, oaPublicURL, oaOpsURL)
			}
			for method := range item.Operations() {
				out[l] = append(out[l], method+" "+path)
			}
		}
	}
	for l := range out {
		sort.Strings(out[l])
	}
	return out
}

var oaEchoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// oaEchoRoutes lists the routes an echo server registered, in the spec's
// notation. Group catch-alls (echo.RouteNotFound) are not routes, and the
// console's HTML pages (under /console) are not part of the API.
func oaEchoRoutes(e *echo.Echo) []string {
	var out []string
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound || r.Path == "/console" || strings.HasPrefix(r.Path, "/console/") {
			continue
		}
		path := r.Path
		if path == "" {
			path = "/"
		}
		out = append(out, r.Method+" "+oaEchoParam.ReplaceAllString(path, "{$1}"))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// oaRouter routes requests to the live test servers: each listener's
// address in the spec is replaced by its httptest URL, so a request sent to
// the wrong listener finds no route.
func oaRouter(t *testing.T, publicURL, opsURL string) routers.Router {
	t.Helper()
	doc := oaLoadSpec(t)
	swap := func(ss openapi3.Servers) {
		for _, s := range ss {
			switch s.URL {
			case oaPublicURL:
				s.URL = publicURL
			case oaOpsURL:
				s.URL = opsURL
			}
		}
	}
	swap(doc.Servers)
	for _, item := range doc.Paths.Map() {
		swap(item.Servers)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return r
}

func oaSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return verify.SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

const oaToken = "openapi-test-token-0123456789"

// oaService is one codewatch (both listeners) on a real database.
type oaService struct {
	public, ops *httptest.Server
	publicE     *echo.Echo
	opsE        *echo.Echo
	pool        *pgxpool.Pool
}

// oaStart starts the service; with fake, its Seam API routes call Seam's
// fake (and a River client works their jobs).
func oaStart(t *testing.T, secret string, fake *seamtest.Fake) *oaService {
	t.Helper()
	return oaStartWith(t, secret, fake, nil)
}

// oaStartWith is oaStart with the ops server's settings changed by tune.
func oaStartWith(t *testing.T, secret string, fake *seamtest.Fake, tune func(*handlers.Ops)) *oaService {
	t.Helper()
	pool := pgtest.New(t)
	logger := slog.New(slog.DiscardHandler)
	store := storetest.New(t, pool, postgres.Config{RemovalTimeout: 30 * time.Minute, Logger: logger})
	var sy handlers.SeamOps
	if fake != nil {
		client, err := seam.New(seam.Config{APIKey: fake.APIKey, BaseURL: fake.URL, RPS: 1000, MaxAttempts: 2,
			BaseBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		svc := seamsync.New(seamsync.Config{Seam: client, Store: store, Logger: logger})
		// As serve does at start-up: the key's workspace (the fake's seed).
		if _, err := svc.ResolveWorkspace(context.Background()); err != nil {
			t.Fatal(err)
		}
		workers := river.NewWorkers()
		svc.Register(workers)
		svc.UseJobs(storetest.Start(t, pool, workers))
		sy = svc
	}
	migr, err := migrations.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { migr.Close() })
	// serve's readiness check: reachable and migrated.
	ready := migr.Ready
	verifier, err := verify.New([]string{secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	s := &oaService{pool: pool}
	s.publicE = handlers.NewPublicServer(&handlers.Public{
		Verifier: verifier, Store: store, Metrics: m, Logger: logger, IngestTimeout: 10 * time.Second,
	})
	ops := &handlers.Ops{
		Store: store, Tokens: []handlers.Token{{Name: "oncall", Value: oaToken}},
		Metrics: m, Logger: logger, Ready: ready, Seam: sy, Console: &console.Console{Store: store},
	}
	entry, _, err := proof.Generate("oa1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := proof.ParseKeys(entry)
	if err != nil {
		t.Fatal(err)
	}
	ops.Proofs = &proof.Service{Records: store, Keys: kr}
	if tune != nil {
		tune(ops)
	}
	s.opsE = handlers.NewOpsServer(ops)
	s.public = httptest.NewServer(s.publicE)
	t.Cleanup(s.public.Close)
	s.ops = httptest.NewServer(s.opsE)
	t.Cleanup(s.ops.Close)
	return s
}

// Whether a request must conform to the spec.
const (
	oaReqValid   = iota // the spec accepts the request
	oaReqInvalid        // the spec rejects it too (the server answers 4xx)
	oaReqSkip           // the spec cannot tell (a body that is not JSON, a bad signature)
)

type oaCall struct {
	name   string
	method string
	url    string
	header http.Header
	body   []byte
	// chunked sends the body without a Content-Length.
	chunked bool
	want    int
	req     int
}

// oaChecker sends calls and validates each live answer against the spec.
type oaChecker struct {
	t      *testing.T
	router routers.Router
	// covered records "METHOD /path STATUS" for every validated answer.
	covered map[string]bool
}

func oaAuth() http.Header {
	return http.Header{"Authorization": {"Bearer " + oaToken}}
}

func (c *oaChecker) do(cl oaCall) (http.Header, []byte) {
	t := c.t
	t.Helper()
	newReq := func() *http.Request {
		var body io.Reader = http.NoBody
		if cl.body != nil {
			body = bytes.NewReader(cl.body)
			if cl.chunked {
				body = io.MultiReader(body) // hides the length
			}
		}
		req, err := http.NewRequest(cl.method, cl.url, body)
		if err != nil {
			t.Fatalf("%s: %v", cl.name, err)
		}
		for k, v := range cl.header {
			req.Header[k] = v
		}
		if cl.body != nil && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		return req
	}

	// Redirects are answers to check, not to follow.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %s %s: %v", cl.name, cl.method, cl.url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", cl.name, err)
	}
	if resp.StatusCode != cl.want {
		t.Errorf("%s: %s %s: status %d, want %d; body %s", cl.name, cl.method, cl.url, resp.StatusCode, cl.want, body)
	}

	vreq := newReq()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: %s %s: no route in the spec: %v", cl.name, cl.method, cl.url, err)
		return resp.Header, body
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			if in.SecuritySchemeName != "bearer" {
				return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
			}
			if in.RequestValidationInput.Request.Header.Get("Authorization") != "Bearer "+oaToken {
				return errors.New("no valid bearer token")
			}
			return nil
		},
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	ctx := context.Background()
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	switch cl.req {
	case oaReqValid:
		if reqErr != nil {
			t.Errorf("%s: the spec rejects a request the server serves: %v", cl.name, reqErr)
		}
	case oaReqInvalid:
		if reqErr == nil {
			t.Errorf("%s: the spec accepts a request the server rejects with %d", cl.name, resp.StatusCode)
		}
	}

	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                opts,
	}
	rin.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		t.Errorf("%s: %s %s: %d response does not match the spec: %v\nbody: %.2000s",
			cl.name, cl.method, cl.url, resp.StatusCode, err, body)
	}
	c.covered[fmt.Sprintf("%s %s %d", route.Method, route.Path, resp.StatusCode)] = true

	// Errors repeat the response's request id.
	if resp.StatusCode >= 400 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var e struct {
			Error struct {
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s: error body: %v", cl.name, err)
		} else if rid := resp.Header.Get("X-Request-Id"); e.Error.RequestID != rid {
			t.Errorf("%s: error.request_id %q, X-Request-Id header %q", cl.name, e.Error.RequestID, rid)
		}
	}
	return resp.Header, body
}

// oaSigned returns a webhook call with body signed by secret at ts.
func oaSigned(t *testing.T, name, u, secret, msgID string, ts time.Time, body []byte, want int) oaCall {
	t.Helper()
	h, err := verify.Sign(secret, msgID, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return oaCall{name: name, method: http.MethodPost, url: u, header: h, body: body, want: want, req: oaReqValid}
}

func oaEvent(t *testing.T, typ, codeID string, at time.Time) []byte {
	t.Helper()
	b, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: codeID, OccurredAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// oaBodyIs reports whether JSON body b equals want, key order aside.
func oaBodyIs(b []byte, want string) bool {
	var got, w any
	return json.Unmarshal(b, &got) == nil && json.Unmarshal([]byte(want), &w) == nil && reflect.DeepEqual(got, w)
}

func oaJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// TestOpenAPIRoutes checks that docs/openapi.yaml documents exactly the
// routes each listener registers, on the right listener.
func TestOpenAPIRoutes(t *testing.T) {
	doc := oaLoadSpec(t)
	spec := oaSpecListeners(t, doc)
	m := metrics.New()
	logger := slog.New(slog.DiscardHandler)
	got := map[string][]string{
		"public": oaEchoRoutes(handlers.NewPublicServer(&handlers.Public{Metrics: m, Logger: logger})),
		"ops":    oaEchoRoutes(handlers.NewOpsServer(&handlers.Ops{Metrics: m, Logger: logger, Console: &console.Console{}})),
	}
	for _, l := range []string{"public", "ops"} {
		if !slices.Equal(got[l], spec[l]) {
			t.Errorf("%s listener: routes registered\n  %v\nroutes in %s\n  %v", l, got[l], oaSpecPath, spec[l])
		}
	}

	// The enums are the domain's lists.
	schemas := doc.Components.Schemas
	var states []string
	for _, v := range schemas["DeletionState"].Value.Enum {
		states = append(states, fmt.Sprint(v))
	}
	var want []string
	for _, s := range lifecycle.States {
		want = append(want, string(s))
	}
	if !slices.Equal(states, want) {
		t.Errorf("DeletionState enum %v, lifecycle.States %v", states, want)
	}
	var reasons []string
	for _, v := range schemas["AccessCode"].Value.Properties["troubleshooting_reason"].Value.Enum {
		if v != nil {
			reasons = append(reasons, fmt.Sprint(v))
		}
	}
	if !slices.Equal(reasons, lifecycle.Reasons) {
		t.Errorf("troubleshooting_reason enum %v, lifecycle.Reasons %v", reasons, lifecycle.Reasons)
	}
}

// TestOpenAPILive drives every route of both listeners, error answers
// included, and validates each live request and answer against the spec.
func TestOpenAPILive(t *testing.T) {
	// JSON lines (the export's jsonl) read as text: the spec says string.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
	secret := oaSecret(t)
	fake := seamtest.Start(t)
	svc := oaStart(t, secret, fake)
	c := &oaChecker{t: t, router: oaRouter(t, svc.public.URL, svc.ops.URL), covered: map[string]bool{}}
	hook := svc.public.URL + "/webhooks/seam"
	ops := svc.ops.URL
	ctx := context.Background()

	// Before any event: the summary's nullable fields are null.
	if _, b := c.do(oaCall{name: "summary, empty", method: http.MethodGet, url: ops + "/v1/summary", header: oaAuth(), want: http.StatusOK}); !bytes.Contains(b, []byte(`"last_event_received_at":null`)) {
		t.Errorf("empty summary: %s", b)
	}

	// A code whose removal failed, one active, one deleted before it was
	// ever programmed, one known only by its deletion (on_device and the
	// timestamps null), one whose removal is overdue (30 min timeout).
	id := func(kind string) string { return "ac-" + kind + "-" + seamevent.NewID() }
	failed, active, unprogrammed, deletedOnly, overdue := id("failed"), id("active"), id("unprog"), id("deleted"), id("overdue")
	now := time.Now().UTC()
	base := now.Add(-20 * time.Minute)
	steps := []struct {
		code string
		typ  string
		at   time.Time
	}{
		{failed, "access_code.created", base},
		{failed, "access_code.set_on_device", base.Add(time.Minute)},
		{failed, "access_code.deleted", base.Add(2 * time.Minute)},
		{failed, "access_code.failed_to_remove_from_device", base.Add(3 * time.Minute)},
		{active, "access_code.created", base},
		{active, "access_code.set_on_device", base.Add(time.Minute)},
		{unprogrammed, "access_code.created", base},
		{unprogrammed, "access_code.deleted", base.Add(time.Minute)},
		{deletedOnly, "access_code.deleted", base},
		{overdue, "access_code.created", now.Add(-3 * time.Hour)},
		{overdue, "access_code.set_on_device", now.Add(-2 * time.Hour)},
		{overdue, "access_code.deleted", now.Add(-time.Hour)},
	}
	sender := &seamevent.Sender{URL: hook, Secret: secret}
	var firstMsg string
	var firstBody []byte
	for i, s := range steps {
		body := oaEvent(t, s.typ, s.code, s.at)
		msg := seamevent.NewMessageID()
		if i == 0 {
			firstMsg, firstBody = msg, body
		}
		// Every other event goes through the Sender, as Svix would send
		// it (its reply is checked here, not against the spec); the rest
		// are validated like every other call.
		if i%2 == 1 {
			sender.Standard = i%4 == 1 // webhook-* headers on some
			rep, err := sender.Send(ctx, msg, body)
			if err != nil || rep.Status != http.StatusOK || !oaBodyIs(rep.Body, `{"ok":true}`) {
				t.Fatalf("send %s: %d %s %v", s.typ, rep.Status, rep.Body, err)
			}
			continue
		}
		c.do(oaSigned(t, "webhook "+s.typ, hook, secret, msg, time.Now(), body, http.StatusOK))
	}

	// Webhook: standard header names, duplicate, quarantine, rejections.
	{
		body := oaEvent(t, "access_code.changed", active, base.Add(9*time.Minute))
		cl := oaSigned(t, "webhook with webhook-* headers", hook, secret, seamevent.NewMessageID(), time.Now(), body, http.StatusOK)
		cl.header = verify.StandardHeaders(cl.header)
		_, b := c.do(cl)
		if !oaBodyIs(b, `{"ok":true}`) {
			t.Errorf("webhook-* headers: %s", b)
		}
	}
	if _, b := c.do(oaSigned(t, "webhook duplicate", hook, secret, firstMsg, time.Now(), firstBody, http.StatusOK)); !oaBodyIs(b, `{"ok":true,"duplicate":true}`) {
		t.Errorf("duplicate: %s", b)
	}
	notJSON := oaSigned(t, "webhook not json", hook, secret, seamevent.NewMessageID(), time.Now(), []byte("not json"), http.StatusOK)
	notJSON.req = oaReqSkip
	if _, b := c.do(notJSON); !oaBodyIs(b, `{"ok":true,"quarantined":true}`) {
		t.Errorf("not json: %s", b)
	}
	// JSON with a string that is not UTF-8: shown as null.
	notUTF8 := oaSigned(t, "webhook not utf-8", hook, secret, seamevent.NewMessageID(), time.Now(), []byte("{\"event_id\":\"\xff\xfe\"}"), http.StatusOK)
	notUTF8.req = oaReqSkip
	c.do(notUTF8)
	// An access_code event without its access_code_id, carrying a PIN:
	// shown with the PIN masked.
	withPIN := oaSigned(t, "webhook quarantined with a PIN", hook, secret, seamevent.NewMessageID(), time.Now(),
		[]byte(`{"event_id":"`+seamevent.NewID()+`","event_type":"access_code.set_on_device","code":"4821"}`), http.StatusOK)
	withPIN.req = oaReqSkip
	c.do(withPIN)

	unsigned := oaCall{name: "webhook without signature", method: http.MethodPost, url: hook,
		body: oaEvent(t, "access_code.created", active, base), want: http.StatusUnauthorized, req: oaReqSkip}
	c.do(unsigned)
	wrong := oaSigned(t, "webhook wrong secret", hook, oaSecret(t), seamevent.NewMessageID(), time.Now(),
		oaEvent(t, "access_code.created", active, base), http.StatusUnauthorized)
	wrong.req = oaReqSkip
	c.do(wrong)
	stale := oaSigned(t, "webhook stale timestamp", hook, secret, seamevent.NewMessageID(), time.Now().Add(-time.Hour),
		oaEvent(t, "access_code.created", active, base), http.StatusUnauthorized)
	stale.req = oaReqSkip
	c.do(stale)
	longID := oaSigned(t, "webhook svix-id too long", hook, secret, "msg_"+strings.Repeat("x", 300), time.Now(),
		oaEvent(t, "access_code.created", active, base), http.StatusBadRequest)
	longID.req = oaReqInvalid
	if _, b := c.do(longID); !bytes.Contains(b, []byte(`"validation_errors"`)) {
		t.Errorf("long svix-id: no validation_errors in %s", b)
	}
	big := append([]byte(`{"event_id":"x","event_type":"access_code.created","pad":"`),
		bytes.Repeat([]byte("a"), handlers.MaxBody)...)
	big = append(big, `"}`...)
	tooBig := oaSigned(t, "webhook over 1 MiB", hook, secret, seamevent.NewMessageID(), time.Now(), big, http.StatusRequestEntityTooLarge)
	tooBig.req = oaReqSkip
	c.do(tooBig)
	tooBig.name, tooBig.chunked = "webhook over 1 MiB, chunked", true
	c.do(tooBig)

	// Health, readiness, metrics, status page.
	c.do(oaCall{name: "public healthz", method: http.MethodGet, url: svc.public.URL + "/healthz", want: http.StatusOK})
	c.do(oaCall{name: "ops healthz", method: http.MethodGet, url: ops + "/healthz", want: http.StatusOK})
	c.do(oaCall{name: "readyz", method: http.MethodGet, url: ops + "/readyz", want: http.StatusOK})
	if _, b := c.do(oaCall{name: "metrics", method: http.MethodGet, url: ops + "/metrics", want: http.StatusOK}); !bytes.Contains(b, []byte("codewatch_webhooks_received_total")) {
		t.Errorf("metrics: no codewatch_webhooks_received_total in\n%.500s", b)
	}
	if h, _ := c.do(oaCall{name: "console", method: http.MethodGet, url: ops + "/", want: http.StatusSeeOther}); h.Get("Location") != "/console/" {
		t.Errorf("/ redirects to %q, want the console", h.Get("Location"))
	}

	// Every /v1 route refuses a request without a valid token.
	v1 := []struct{ method, path string }{
		{http.MethodGet, "/v1/access_codes"},
		{http.MethodGet, "/v1/access_codes/" + failed},
		{http.MethodPost, "/v1/access_codes/" + failed + "/acknowledge"},
		{http.MethodPost, "/v1/access_codes/" + failed + "/delete"},
		{http.MethodPost, "/v1/access_codes/" + failed + "/reconcile"},
		{http.MethodGet, "/v1/devices"},
		{http.MethodGet, "/v1/devices/some-lock"},
		{http.MethodGet, "/v1/summary"},
		{http.MethodGet, "/v1/quarantine"},
		{http.MethodGet, "/v1/access_codes/" + failed + "/proof"},
		{http.MethodGet, "/v1/exports/deletions"},
	}
	c.do(oaCall{name: "no token public key", method: http.MethodGet, url: ops + "/v1/proof/public_key", want: http.StatusUnauthorized, req: oaReqInvalid})
	for _, r := range v1 {
		c.do(oaCall{name: "no token " + r.path, method: r.method, url: ops + r.path, want: http.StatusUnauthorized, req: oaReqInvalid})
		c.do(oaCall{name: "wrong token " + r.path, method: r.method, url: ops + r.path, want: http.StatusUnauthorized, req: oaReqInvalid,
			header: http.Header{"Authorization": {"Bearer not-the-token-at-all"}}})
	}

	// One code, with history and trouble details.
	{
		_, b := c.do(oaCall{name: "get failed code", method: http.MethodGet, url: ops + "/v1/access_codes/" + failed, header: oaAuth(), want: http.StatusOK})
		var r struct {
			AccessCode struct {
				DeletionState          string          `json:"deletion_state"`
				NeedsTroubleshooting   bool            `json:"needs_troubleshooting"`
				TroubleshootingDetails json.RawMessage `json:"troubleshooting_details"`
				Events                 []any           `json:"events"`
			} `json:"access_code"`
		}
		oaJSON(t, b, &r)
		if r.AccessCode.DeletionState != "failed" || !r.AccessCode.NeedsTroubleshooting ||
			!bytes.Contains(r.AccessCode.TroubleshootingDetails, []byte("failed_to_remove_from_device")) || len(r.AccessCode.Events) != 4 {
			t.Errorf("failed code: %s", b)
		}
	}
	c.do(oaCall{name: "get unprogrammed code", method: http.MethodGet, url: ops + "/v1/access_codes/" + unprogrammed, header: oaAuth(), want: http.StatusOK})
	// The deletions export (issue 22).
	{
		_, b := c.do(oaCall{name: "export csv", method: http.MethodGet, url: ops + "/v1/exports/deletions", header: oaAuth(), want: http.StatusOK})
		if !bytes.HasPrefix(b, []byte("access_code_id,access_code_name,")) || !bytes.Contains(b, []byte(failed)) {
			t.Errorf("export csv: %s", b)
		}
		c.do(oaCall{name: "export jsonl", method: http.MethodGet, url: ops + "/v1/exports/deletions?format=jsonl&since=2020-01-01", header: oaAuth(), want: http.StatusOK})
		c.do(oaCall{name: "export, bad format", method: http.MethodGet, url: ops + "/v1/exports/deletions?format=xlsx", header: oaAuth(), want: http.StatusBadRequest, req: oaReqInvalid})
	}
	// Signed deletion records (issue 22); without CODEWATCH_SIGNING_KEY, 501.
	{
		_, b := c.do(oaCall{name: "proof of the failed code", method: http.MethodGet, url: ops + "/v1/access_codes/" + failed + "/proof", header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(`"alg":"Ed25519"`)) || !bytes.Contains(b, []byte(`"access_code_id":"`+failed+`"`)) {
			t.Errorf("proof: %s", b)
		}
		c.do(oaCall{name: "proof of an unknown code", method: http.MethodGet, url: ops + "/v1/access_codes/no-such-code/proof", header: oaAuth(), want: http.StatusNotFound})
		c.do(oaCall{name: "proof public key", method: http.MethodGet, url: ops + "/v1/proof/public_key", header: oaAuth(), want: http.StatusOK})
		unsigned := oaStartWith(t, secret, nil, func(o *handlers.Ops) { o.Proofs = nil })
		uc := &oaChecker{t: t, router: oaRouter(t, unsigned.public.URL, unsigned.ops.URL), covered: c.covered}
		_, b = uc.do(oaCall{name: "proof, no signing key", method: http.MethodGet, url: unsigned.ops.URL + "/v1/access_codes/x/proof", header: oaAuth(), want: http.StatusNotImplemented})
		if !bytes.Contains(b, []byte(`"type":"signing_key_not_configured"`)) {
			t.Errorf("no signing key: %s", b)
		}
		uc.do(oaCall{name: "public key, no signing key", method: http.MethodGet, url: unsigned.ops.URL + "/v1/proof/public_key", header: oaAuth(), want: http.StatusNotImplemented})
	}
	{
		_, b := c.do(oaCall{name: "get unknown code", method: http.MethodGet, url: ops + "/v1/access_codes/nope", header: oaAuth(), want: http.StatusNotFound})
		if !bytes.Contains(b, []byte(`"data":{"access_code_id":"nope"}`)) {
			t.Errorf("unknown code: %s", b)
		}
	}

	// Lists, filters, paging.
	type page struct {
		AccessCodes []map[string]any `json:"access_codes"`
		NextCursor  *string          `json:"next_cursor"`
	}
	{
		_, b := c.do(oaCall{name: "list all", method: http.MethodGet, url: ops + "/v1/access_codes", header: oaAuth(), want: http.StatusOK})
		var r page
		oaJSON(t, b, &r)
		if len(r.AccessCodes) != 5 || r.NextCursor != nil {
			t.Errorf("list all: %s", b)
		}
		for _, ac := range r.AccessCodes {
			if _, ok := ac["events"]; ok {
				t.Errorf("list all: events in a list item: %v", ac)
			}
		}
	}
	{
		seen := map[string]bool{}
		u := ops + "/v1/access_codes?limit=2"
		for pages := 1; ; pages++ {
			_, b := c.do(oaCall{name: fmt.Sprintf("list page %d", pages), method: http.MethodGet, url: u, header: oaAuth(), want: http.StatusOK})
			var r page
			oaJSON(t, b, &r)
			for _, ac := range r.AccessCodes {
				seen[ac["access_code_id"].(string)] = true
			}
			if r.NextCursor == nil {
				if pages != 3 || len(seen) != 5 {
					t.Errorf("paging: %d pages, %d codes, want 3 and 5", pages, len(seen))
				}
				break
			}
			if pages > 3 {
				t.Fatalf("paging does not end: %s", b)
			}
			u = ops + "/v1/access_codes?limit=2&cursor=" + url.QueryEscape(*r.NextCursor)
		}
	}
	{
		_, b := c.do(oaCall{name: "get overdue code", method: http.MethodGet, url: ops + "/v1/access_codes/" + overdue, header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(`"troubleshooting_reason":"removal_overdue"`)) {
			t.Errorf("overdue code: %s", b)
		}
		_, b = c.do(oaCall{name: "get deletion-only code", method: http.MethodGet, url: ops + "/v1/access_codes/" + deletedOnly, header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(`"on_device":null`)) {
			t.Errorf("deletion-only code: %s", b)
		}
	}
	{
		q := url.Values{"deletion_state": {"failed,delayed"}, "needs_troubleshooting": {"true"},
			"workspace_id": {"680d7c60-0a92-4e78-85bd-cb45155576b9"}, "device_id": {"b2c5d123-c7da-44be-ac72-4ad4ca56dbd8"}, "limit": {"500"}}
		_, b := c.do(oaCall{name: "list filtered", method: http.MethodGet, url: ops + "/v1/access_codes?" + q.Encode(), header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(failed)) || bytes.Contains(b, []byte(active)) {
			t.Errorf("list filtered: %s", b)
		}
	}
	for _, bad := range []struct {
		query string
		req   int
	}{
		{"deletion_state=gone", oaReqInvalid},
		{"needs_troubleshooting=maybe", oaReqInvalid},
		{"limit=0", oaReqInvalid},
		{"limit=501", oaReqInvalid},
		{"limit=ten", oaReqInvalid},
		{"cursor=not-a-cursor", oaReqValid}, // opaque to the spec
		{"colour=red", oaReqValid},          // OpenAPI cannot forbid unknown parameters
	} {
		_, b := c.do(oaCall{name: "list ?" + bad.query, method: http.MethodGet, url: ops + "/v1/access_codes?" + bad.query, header: oaAuth(),
			want: http.StatusBadRequest, req: bad.req})
		if !bytes.Contains(b, []byte(`"validation_errors"`)) {
			t.Errorf("list ?%s: no validation_errors in %s", bad.query, b)
		}
	}

	// Summary.
	{
		_, b := c.do(oaCall{name: "summary", method: http.MethodGet, url: ops + "/v1/summary", header: oaAuth(), want: http.StatusOK})
		var r struct {
			Summary struct {
				Total                int64 `json:"total"`
				NeedsTroubleshooting int64 `json:"needs_troubleshooting"`
			} `json:"summary"`
		}
		oaJSON(t, b, &r)
		if r.Summary.Total != 5 || r.Summary.NeedsTroubleshooting != 2 {
			t.Errorf("summary: %s", b)
		}
	}

	// Quarantine, with paging, PINs masked, a body that is not JSON (a
	// notice, never its bytes) and one that is not UTF-8 (null); newest
	// first.
	{
		_, b := c.do(oaCall{name: "quarantine", method: http.MethodGet, url: ops + "/v1/quarantine", header: oaAuth(), want: http.StatusOK})
		var r struct {
			Q []struct {
				Body *string `json:"body"`
			} `json:"quarantined_deliveries"`
			NextCursor *string `json:"next_cursor"`
		}
		oaJSON(t, b, &r)
		if len(r.Q) != 3 || r.Q[0].Body == nil || !strings.Contains(*r.Q[0].Body, `"code":"••21"`) || strings.Contains(string(b), "4821") ||
			r.Q[1].Body != nil || r.Q[2].Body == nil || *r.Q[2].Body != `{"masked":"body is not JSON"}` || r.NextCursor != nil {
			t.Errorf("quarantine: %s", b)
		}
		_, b = c.do(oaCall{name: "quarantine page 1", method: http.MethodGet, url: ops + "/v1/quarantine?limit=1", header: oaAuth(), want: http.StatusOK})
		oaJSON(t, b, &r)
		if len(r.Q) != 1 || r.NextCursor == nil {
			t.Fatalf("quarantine page 1: %s", b)
		}
		c.do(oaCall{name: "quarantine page 2", method: http.MethodGet, header: oaAuth(), want: http.StatusOK,
			url: ops + "/v1/quarantine?limit=1&cursor=" + url.QueryEscape(*r.NextCursor)})
	}
	c.do(oaCall{name: "quarantine ?limit=-1", method: http.MethodGet, url: ops + "/v1/quarantine?limit=-1", header: oaAuth(),
		want: http.StatusBadRequest, req: oaReqInvalid})
	c.do(oaCall{name: "quarantine ?deletion_state=failed", method: http.MethodGet, url: ops + "/v1/quarantine?deletion_state=failed", header: oaAuth(),
		want: http.StatusBadRequest, req: oaReqValid})

	// Acknowledge.
	ack := func(id string) string { return ops + "/v1/access_codes/" + id + "/acknowledge" }
	{
		_, b := c.do(oaCall{name: "acknowledge", method: http.MethodPost, url: ack(failed), header: oaAuth(),
			body: []byte(`{"note":"checked the lock on site"}`), want: http.StatusOK})
		var r struct {
			AccessCode struct {
				NeedsTroubleshooting bool    `json:"needs_troubleshooting"`
				AcknowledgedBy       *string `json:"acknowledged_by"`
				AcknowledgementNote  *string `json:"acknowledgement_note"`
			} `json:"access_code"`
		}
		oaJSON(t, b, &r)
		if r.AccessCode.NeedsTroubleshooting || r.AccessCode.AcknowledgedBy == nil || *r.AccessCode.AcknowledgedBy != "oncall" ||
			r.AccessCode.AcknowledgementNote == nil || *r.AccessCode.AcknowledgementNote != "checked the lock on site" {
			t.Errorf("acknowledge: %s", b)
		}
	}
	c.do(oaCall{name: "acknowledge again, no body", method: http.MethodPost, url: ack(failed), header: oaAuth(), want: http.StatusOK})
	{
		_, b := c.do(oaCall{name: "acknowledge a trouble that is not the code's", method: http.MethodPost, url: ack(failed), header: oaAuth(),
			body: []byte(`{"note":"x","trouble_id":"trouble_000000000000000000000000"}`), want: http.StatusConflict})
		if !bytes.Contains(b, []byte(`"type":"trouble_changed"`)) || !bytes.Contains(b, []byte(`"access_code":{`)) {
			t.Errorf("trouble changed: %s", b)
		}
	}
	c.do(oaCall{name: "acknowledge without trouble", method: http.MethodPost, url: ack(active), header: oaAuth(),
		body: []byte(`{"note":"x"}`), want: http.StatusConflict})
	c.do(oaCall{name: "acknowledge unknown", method: http.MethodPost, url: ack("nope"), header: oaAuth(),
		body: []byte(`{}`), want: http.StatusNotFound})
	c.do(oaCall{name: "acknowledge body not an object", method: http.MethodPost, url: ack(failed), header: oaAuth(),
		body: []byte(`["note"]`), want: http.StatusBadRequest, req: oaReqInvalid})
	c.do(oaCall{name: "acknowledge note too long", method: http.MethodPost, url: ack(failed), header: oaAuth(),
		body: []byte(`{"note":"` + strings.Repeat("n", 2001) + `"}`), want: http.StatusBadRequest, req: oaReqInvalid})
	c.do(oaCall{name: "acknowledge body over 64 KiB", method: http.MethodPost, url: ack(failed), header: oaAuth(),
		body: []byte(`{"note":"` + strings.Repeat("n", 64<<10) + `"}`), want: http.StatusRequestEntityTooLarge, req: oaReqInvalid})

	// Locks: the failed code's lock goes offline.
	{
		var got struct {
			AccessCode struct {
				DeviceID string `json:"device_id"`
			} `json:"access_code"`
		}
		_, b := c.do(oaCall{name: "get failed code for its lock", method: http.MethodGet, url: ops + "/v1/access_codes/" + failed, header: oaAuth(), want: http.StatusOK})
		oaJSON(t, b, &got)
		dev := got.AccessCode.DeviceID
		body, _ := json.Marshal(map[string]any{"event_id": seamevent.NewID(), "event_type": "device.disconnected",
			"device_id": dev, "workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9", "error_code": "hub_disconnected",
			"occurred_at": time.Now().UTC().Format(time.RFC3339Nano)})
		c.do(oaSigned(t, "lock goes offline", hook, secret, seamevent.NewMessageID(), time.Now(), body, http.StatusOK))
		_, b = c.do(oaCall{name: "offline locks", method: http.MethodGet, url: ops + "/v1/devices?online=false&has_unconfirmed_deletions=true", header: oaAuth(), want: http.StatusOK})
		var list struct {
			Devices []struct {
				DeviceID             string `json:"device_id"`
				Online               *bool  `json:"online"`
				Code                 string `json:"connectivity_error_code"`
				CodesAwaitingRemoval int    `json:"codes_awaiting_removal"`
			} `json:"devices"`
		}
		oaJSON(t, b, &list)
		if len(list.Devices) != 1 || list.Devices[0].DeviceID != dev || list.Devices[0].Online == nil || *list.Devices[0].Online ||
			list.Devices[0].Code != "hub_disconnected" || list.Devices[0].CodesAwaitingRemoval < 1 {
			t.Errorf("offline locks: %s", b)
		}
		_, b = c.do(oaCall{name: "all locks, a page of one", method: http.MethodGet, url: ops + "/v1/devices?limit=1", header: oaAuth(), want: http.StatusOK})
		var page struct {
			Next *string `json:"next_cursor"`
		}
		oaJSON(t, b, &page)
		if page.Next != nil {
			c.do(oaCall{name: "locks, next page", method: http.MethodGet, url: ops + "/v1/devices?limit=1&cursor=" + *page.Next, header: oaAuth(), want: http.StatusOK})
		}
		c.do(oaCall{name: "locks, bad filter", method: http.MethodGet, url: ops + "/v1/devices?online=maybe", header: oaAuth(), want: http.StatusBadRequest, req: oaReqInvalid})
		_, b = c.do(oaCall{name: "one lock", method: http.MethodGet, url: ops + "/v1/devices/" + dev, header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(`"access_codes":[`)) || !bytes.Contains(b, []byte(failed)) {
			t.Errorf("one lock: %s", b)
		}
		_, b = c.do(oaCall{name: "the failed code shows its lock offline", method: http.MethodGet, url: ops + "/v1/access_codes/" + failed, header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(`"lock_online":false`)) || !bytes.Contains(b, []byte(`"troubleshooting_severity":"warning"`)) {
			t.Errorf("code with its lock: %s", b)
		}
		_, b = c.do(oaCall{name: "unknown lock", method: http.MethodGet, url: ops + "/v1/devices/nope", header: oaAuth(), want: http.StatusNotFound})
		if !bytes.Contains(b, []byte(`"type":"device_not_found"`)) {
			t.Errorf("unknown lock: %s", b)
		}
	}

	// Seam's API, through its fake: a code Seam has, deleted at codewatch's
	// request, then confirmed by a lookup.
	{
		seamCode, err := fake.CreateAccessCode(ctx, fake.Devices[0], "4821")
		if err != nil {
			t.Fatal(err)
		}
		del := func(id string) string { return ops + "/v1/access_codes/" + id + "/delete" }
		rec := func(id string) string { return ops + "/v1/access_codes/" + id + "/reconcile" }
		_, b := c.do(oaCall{name: "request a deletion", method: http.MethodPost, url: del(seamCode), header: oaAuth(), want: http.StatusAccepted})
		if !bytes.Contains(b, []byte(`"deletion_state":"deletion_requested"`)) || !bytes.Contains(b, []byte(`"requested_by":"oncall"`)) {
			t.Errorf("deletion requested: %s", b)
		}
		c.do(oaCall{name: "request it again: the pending request", method: http.MethodPost, url: del(seamCode), header: oaAuth(), want: http.StatusAccepted})
		_, b = c.do(oaCall{name: "reconcile the deleted code", method: http.MethodPost, url: rec(seamCode), header: oaAuth(), want: http.StatusOK})
		if !bytes.Contains(b, []byte(`"deletion_state":"removed"`)) || !bytes.Contains(b, []byte(`"confirmed_by":"poll"`)) ||
			!bytes.Contains(b, []byte(`"source":"poll"`)) {
			t.Errorf("reconciled: %s", b)
		}
		_, b = c.do(oaCall{name: "delete a code Seam does not have", method: http.MethodPost, url: del("nope-seam"), header: oaAuth(), want: http.StatusNotFound})
		if !bytes.Contains(b, []byte(`"type":"access_code_not_found"`)) {
			t.Errorf("unknown to Seam: %s", b)
		}
		c.do(oaCall{name: "reconcile a code codewatch does not know", method: http.MethodPost, url: rec("nope-local"), header: oaAuth(), want: http.StatusNotFound})
		other, err := fake.CreateAccessCode(ctx, fake.Devices[0], "5932")
		if err != nil {
			t.Fatal(err)
		}
		if err := fake.SimulateWorkspaceOutage(ctx, "/access_codes/delete", "/access_codes/get"); err != nil {
			t.Fatal(err)
		}
		_, b = c.do(oaCall{name: "delete during Seam's outage", method: http.MethodPost, url: del(other), header: oaAuth(), want: http.StatusBadGateway})
		if !bytes.Contains(b, []byte(`"type":"seam_api_error"`)) {
			t.Errorf("outage: %s", b)
		}
		c.do(oaCall{name: "reconcile during Seam's outage", method: http.MethodPost, url: rec(seamCode), header: oaAuth(), want: http.StatusBadGateway})
		// The test's other codes are in another workspace than the fake's
		// key: not this key's to look up or delete.
		_, b = c.do(oaCall{name: "reconcile a code of another workspace", method: http.MethodPost, url: rec(active), header: oaAuth(), want: http.StatusConflict})
		if !bytes.Contains(b, []byte(`"type":"workspace_not_covered"`)) {
			t.Errorf("not covered: %s", b)
		}
		c.do(oaCall{name: "delete a code of another workspace", method: http.MethodPost, url: del(active), header: oaAuth(), want: http.StatusConflict})
		if err := fake.SimulateWorkspaceOutage(ctx); err != nil {
			t.Fatal(err)
		}
		// Without SEAM_API_KEY the routes say so.
		off := oaStart(t, secret, nil)
		oc := &oaChecker{t: t, router: oaRouter(t, off.public.URL, off.ops.URL), covered: c.covered}
		_, b = oc.do(oaCall{name: "delete, Seam API off", method: http.MethodPost, url: off.ops.URL + "/v1/access_codes/x/delete", header: oaAuth(), want: http.StatusNotImplemented})
		if !bytes.Contains(b, []byte(`"type":"seam_api_not_configured"`)) {
			t.Errorf("off: %s", b)
		}
		oc.do(oaCall{name: "reconcile, Seam API off", method: http.MethodPost, url: off.ops.URL + "/v1/access_codes/x/reconcile", header: oaAuth(), want: http.StatusNotImplemented})

		// A route whose call to Seam outlasts its wait answers 202 saying
		// where to look (a wait too short for any lookup to finish).
		impatient := oaStartWith(t, secret, fake, func(o *handlers.Ops) { o.SeamWait = time.Nanosecond })
		ic := &oaChecker{t: t, router: oaRouter(t, impatient.public.URL, impatient.ops.URL), covered: c.covered}
		ic.do(oaSigned(t, "a code in the key's workspace", impatient.public.URL+"/webhooks/seam", secret, seamevent.NewMessageID(), time.Now(),
			[]byte(`{"event_id":"`+seamevent.NewID()+`","event_type":"access_code.deleted","access_code_id":"slow1","device_id":"d","workspace_id":"seed_workspace_1","occurred_at":"2026-01-01T00:00:00Z"}`), http.StatusOK))
		hdr, b := ic.do(oaCall{name: "reconcile outlasting its wait", method: http.MethodPost, url: impatient.ops.URL + "/v1/access_codes/slow1/reconcile",
			header: oaAuth(), want: http.StatusAccepted})
		if !bytes.Contains(b, []byte(`"in_progress":{`)) || hdr.Get("Location") != "/v1/access_codes/slow1" {
			t.Errorf("in progress: %s %v", b, hdr)
		}
	}

	// The same oaService with its database gone: 503 wherever it is needed.
	broken := oaStart(t, secret, fake)
	bc := &oaChecker{t: t, router: oaRouter(t, broken.public.URL, broken.ops.URL), covered: c.covered}
	broken.pool.Close()
	bc.do(oaSigned(t, "webhook, database down", broken.public.URL+"/webhooks/seam", secret, seamevent.NewMessageID(), time.Now(),
		oaEvent(t, "access_code.created", active, base), http.StatusServiceUnavailable))
	bc.do(oaCall{name: "readyz, database down", method: http.MethodGet, url: broken.ops.URL + "/readyz", want: http.StatusServiceUnavailable})
	bc.do(oaCall{name: "healthz, database down", method: http.MethodGet, url: broken.ops.URL + "/healthz", want: http.StatusOK})
	for _, r := range v1 {
		bc.do(oaCall{name: r.path + ", database down", method: r.method, url: broken.ops.URL + r.path, header: oaAuth(), want: http.StatusServiceUnavailable})
	}

	// Every documented answer but 500 was seen live.
	doc := oaLoadSpec(t)
	var missing []string
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			for status := range op.Responses.Map() {
				key := method + " " + path + " " + status
				if status != "500" && !c.covered[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("documented answers never exercised:\n  %s", strings.Join(missing, "\n  "))
	}
}
