package handlers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/internal/clocktest"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789ab"
	consolePIN = "73051946"
)

// consoleEnv is an ops listener with the console, on a test database.
type consoleEnv struct {
	t     testing.TB
	pool  *pgxpool.Pool
	store *postgres.Store
	clock *clocktest.Clock
	logs  *logtest.Buffer
	srv   *httptest.Server
	ops   *handlers.Ops
}

func newConsoleEnv(t testing.TB, cfg console.Console, tokens ...handlers.Token) *consoleEnv {
	t.Helper()
	pool := pgtest.New(t)
	e := &consoleEnv{t: t, pool: pool, clock: clocktest.New(time.Now().UTC().Truncate(time.Second)), logs: &logtest.Buffer{}}
	e.store = storetest.New(t, pool, postgres.Config{RemovalTimeout: 30 * time.Minute, Now: e.clock.Now})
	if len(tokens) == 0 {
		tokens = []handlers.Token{{Name: "alice", Value: aliceToken}, {Name: "bob", Value: bobToken}}
	}
	cfg.Store, cfg.Now = e.store, e.clock.Now
	e.ops = &handlers.Ops{Store: e.store, Tokens: tokens, Metrics: metrics.New(),
		Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Ready: func(context.Context) error { return nil }, Console: &cfg}
	e.srv = httptest.NewServer(handlers.NewOpsServer(e.ops))
	t.Cleanup(e.srv.Close)
	return e
}

// send ingests a Seam event for code on device, occurred ago before now.
func (e *consoleEnv) send(typ, code, device string, ago time.Duration) {
	e.t.Helper()
	body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, DeviceID: device,
		OccurredAt: e.clock.Now().Add(-ago), Code: consolePIN})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Ingest(context.Background(), lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body}); err != nil {
		e.t.Fatal(err)
	}
}

// troubled makes a code whose removal failed.
func (e *consoleEnv) troubled(device string) string {
	code := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, code, device, time.Hour)
	e.send(lifecycle.TypeDeleted, code, device, 10*time.Minute)
	e.send(lifecycle.TypeFailedToRemove, code, device, 5*time.Minute)
	return code
}

// browserish is an HTTP client with a cookie jar that does not follow
// redirects, sending what a browser sends with a form.
type browserish struct {
	t    testing.TB
	base string
	c    *http.Client
	jar  *cookiejar.Jar
	// origin is the Origin header of POSTs ("" for none).
	origin string
}

func (e *consoleEnv) client() *browserish {
	jar, _ := cookiejar.New(nil)
	return &browserish{t: e.t, base: e.srv.URL, jar: jar, origin: e.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type reply struct {
	Status int
	Header http.Header
	Body   string
}

func (b *browserish) do(req *http.Request) reply {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(body)}
}

func (b *browserish) get(path string, header ...string) reply {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

func (b *browserish) post(path string, form url.Values, header ...string) reply {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrf is the CSRF token of the forms on the page at path.
func (b *browserish) csrf(path string) string {
	b.t.Helper()
	r := b.get(path)
	m := csrfField.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token:\n%.400s", path, r.Status, r.Body)
	}
	return m[1]
}

func (b *browserish) signIn(token string) reply {
	b.t.Helper()
	return b.post("/console/signin", url.Values{"csrf": {b.csrf("/console/signin")}, "token": {token}, "next": {"/console/"}})
}

func (b *browserish) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.base + "/console/")
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func setCookie(r reply, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestConsoleSignIn(t *testing.T) {
	e := newConsoleEnv(t, console.Console{SessionTTL: 2 * time.Hour})
	b := e.client()

	r := b.get("/")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/" {
		t.Errorf("GET /: %d %s, want a redirect to the console", r.Status, r.Header.Get("Location"))
	}
	r = b.get("/console/codes?state=failed")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/signin?next=%2Fconsole%2Fcodes%3Fstate%3Dfailed" {
		t.Fatalf("a page without a session: %d %s, want the sign-in page, then back", r.Status, r.Header.Get("Location"))
	}

	r = b.signIn("not-a-token-0123456789")
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "not one of") || setCookie(r, "codewatch_session") != nil {
		t.Errorf("a wrong token: %d, session cookie %v:\n%.300s", r.Status, setCookie(r, "codewatch_session"), r.Body)
	}
	if !strings.Contains(e.logs.String(), `"msg":"console sign-in refused"`) || strings.Contains(e.logs.String(), "not-a-token") {
		t.Errorf("a refused sign-in is logged, without the token: %s", e.logs.String())
	}
	// The sign-in form is protected too: its token must come back, from
	// this site.
	r = b.post("/console/signin", url.Values{"csrf": {"forged"}, "token": {aliceToken}})
	if r.Status != http.StatusForbidden || setCookie(r, "codewatch_session") != nil {
		t.Errorf("sign-in without the form's token: %d", r.Status)
	}
	b.origin = "https://evil.example"
	if r = b.signIn(aliceToken); r.Status != http.StatusForbidden {
		t.Errorf("sign-in posted from another site: %d", r.Status)
	}
	b.origin = e.srv.URL

	r = b.post("/console/signin", url.Values{"csrf": {b.csrf("/console/signin?next=/console/alerts")}, "token": {aliceToken},
		"next": {"/console/alerts"}})
	c := setCookie(r, "codewatch_session")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/alerts" || c == nil {
		t.Fatalf("the right token: %d %s, cookie %v", r.Status, r.Header.Get("Location"), c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || c.MaxAge != 7200 {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, Max-Age=7200, not Secure over http", c)
	}
	if strings.Contains(e.logs.String(), c.Value) || strings.Contains(e.logs.String(), aliceToken) {
		t.Error("the log holds the session cookie or the token")
	}
	r = b.get("/console/")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Signed in as <strong>alice</strong>") {
		t.Errorf("the console after signing in: %d\n%.500s", r.Status, r.Body)
	}
	if r = b.get("/console/signin?next=/console/quarantine"); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/quarantine" {
		t.Errorf("the sign-in page when signed in: %d %s", r.Status, r.Header.Get("Location"))
	}

	// Going back to another site after signing in is refused.
	for _, next := range []string{"//evil.example/", "https://evil.example/console/", "/\\evil.example"} {
		b2 := e.client()
		r := b2.post("/console/signin", url.Values{"csrf": {b2.csrf("/console/signin")}, "token": {bobToken}, "next": {next}})
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/" {
			t.Errorf("next=%q: went to %q", next, r.Header.Get("Location"))
		}
	}

	// Signing out needs the form's token; then the cookie is cleared.
	if r = b.post("/console/signout", url.Values{}); r.Status != http.StatusForbidden {
		t.Errorf("sign-out without the form's token: %d", r.Status)
	}
	r = b.post("/console/signout", url.Values{"csrf": {b.csrf("/console/")}})
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/console/signin") {
		t.Errorf("sign-out: %d %s", r.Status, r.Header.Get("Location"))
	}
	if c := setCookie(r, "codewatch_session"); c == nil || c.MaxAge >= 0 {
		t.Errorf("sign-out does not clear the cookie: %+v", c)
	}
	if r = b.get("/console/"); r.Status != http.StatusSeeOther {
		t.Errorf("the console after signing out: %d", r.Status)
	}
}

// A session is a cookie signed with a key derived from its token: another
// replica with the same tokens accepts it; it ends when it expires or when
// its token is removed or changed; it cannot be altered to name another
// token's holder.
func TestConsoleSessions(t *testing.T) {
	e := newConsoleEnv(t, console.Console{SessionTTL: time.Hour})
	b := e.client()
	if r := b.signIn(aliceToken); r.Status != http.StatusSeeOther {
		t.Fatalf("sign in: %d", r.Status)
	}
	cookie := b.cookie("codewatch_session")
	with := func(srv *httptest.Server, value string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/console/", nil)
		req.AddCookie(&http.Cookie{Name: "codewatch_session", Value: value})
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	replica := func(tokens ...handlers.Token) *httptest.Server {
		ops := *e.ops
		ops.Tokens = tokens
		cfg := *ops.Console.(*console.Console)
		ops.Console = &cfg
		srv := httptest.NewServer(handlers.NewOpsServer(&ops))
		t.Cleanup(srv.Close)
		return srv
	}
	if st := with(e.srv, cookie.Value); st != http.StatusOK {
		t.Fatalf("the session: %d", st)
	}
	alice, bob := handlers.Token{Name: "alice", Value: aliceToken}, handlers.Token{Name: "bob", Value: bobToken}
	if st := with(replica(bob, alice), cookie.Value); st != http.StatusOK {
		t.Errorf("another replica with the same tokens: %d, want the session accepted", st)
	}
	if st := with(replica(bob), cookie.Value); st != http.StatusSeeOther {
		t.Errorf("alice's token removed: %d, want her session ended", st)
	}
	if st := with(replica(bob, handlers.Token{Name: "alice", Value: "alice-new-token-0123456"}), cookie.Value); st != http.StatusSeeOther {
		t.Errorf("alice's token changed: %d, want her session ended", st)
	}
	payload, sig, _ := strings.Cut(cookie.Value, ".")
	forged := strings.Replace(payload, "eyJuIjoiYWxpY2Ui", "eyJuIjoiYm9iIi", 1) + "." + sig
	for _, v := range []string{forged, payload, cookie.Value + "x", "x." + sig, ""} {
		if st := with(e.srv, v); st != http.StatusSeeOther {
			t.Errorf("cookie %q: %d, want refused", v, st)
		}
	}
	e.clock.Advance(59 * time.Minute)
	if st := with(e.srv, cookie.Value); st != http.StatusOK {
		t.Errorf("before it expires: %d", st)
	}
	e.clock.Advance(2 * time.Minute)
	if st := with(e.srv, cookie.Value); st != http.StatusSeeOther {
		t.Errorf("after CODEWATCH_SESSION_TTL: %d, want the session ended", st)
	}
	// A page that updates itself learns it with a 401, not a redirect.
	if r := b.get("/console/", "X-Codewatch-Live", "1"); r.Status != http.StatusUnauthorized {
		t.Errorf("a live refresh after the session ended: %d, want 401", r.Status)
	}
}

// Cookies are Secure (and the session one __Host- prefixed) when the
// console is reached over HTTPS: CODEWATCH_PUBLIC_URL says so, or the
// request came through a proxy that did.
func TestConsoleSecureCookies(t *testing.T) {
	pub, _ := url.Parse("https://ops.example.com")
	for _, c := range []struct {
		name   string
		cfg    console.Console
		header []string
		secure bool
	}{
		{"http", console.Console{}, nil, false},
		{"public URL https", console.Console{PublicURL: pub}, nil, true},
		{"behind a TLS proxy", console.Console{}, []string{"X-Forwarded-Proto", "https"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newConsoleEnv(t, c.cfg)
			b := e.client()
			r := b.get("/console/signin", c.header...)
			m := csrfField.FindStringSubmatch(r.Body)
			if sc := setCookie(r, "codewatch_signin"); sc == nil || sc.Secure != c.secure || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode {
				t.Errorf("sign-in form cookie %+v, want Secure=%v", sc, c.secure)
			}
			signin := setCookie(r, "codewatch_signin")
			if signin == nil || m == nil {
				t.Fatalf("sign-in page: %d", r.Status)
			}
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/console/signin",
				strings.NewReader(url.Values{"csrf": {m[1]}, "token": {aliceToken}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: signin.Name, Value: signin.Value})
			for i := 0; i+1 < len(c.header); i += 2 {
				req.Header.Set(c.header[i], c.header[i+1])
			}
			r = (&browserish{t: t, c: &http.Client{CheckRedirect: b.c.CheckRedirect}}).do(req)
			name := "codewatch_session"
			if c.secure {
				name = "__Host-codewatch_session"
			}
			sc := setCookie(r, name)
			if r.Status != http.StatusSeeOther || sc == nil || sc.Secure != c.secure || sc.Path != "/" || sc.Domain != "" {
				t.Errorf("sign-in: %d, cookie %s %+v, want Secure=%v", r.Status, name, sc, c.secure)
			}
		})
	}
}

// Every form that changes state needs the session's CSRF token and is
// refused when the browser says another site sent it.
func TestConsoleCSRF(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-1")
	alice, bob := e.client(), e.client()
	alice.signIn(aliceToken)
	bob.signIn(bobToken)
	page := "/console/codes/" + code
	token := alice.csrf(page)
	ack := "/console/codes/" + code + "/acknowledge"
	for _, c := range []struct {
		name   string
		form   url.Values
		header []string
		origin string
	}{
		{"no token", url.Values{"note": {"x"}}, nil, e.srv.URL},
		{"another session's token", url.Values{"note": {"x"}, "csrf": {bob.csrf(page)}}, nil, e.srv.URL},
		{"from another site", url.Values{"note": {"x"}, "csrf": {token}}, nil, "https://evil.example"},
		{"opaque origin", url.Values{"note": {"x"}, "csrf": {token}}, nil, "null"},
		{"cross-site fetch", url.Values{"note": {"x"}, "csrf": {token}}, []string{"Sec-Fetch-Site", "cross-site"}, ""},
	} {
		alice.origin = c.origin
		if r := alice.post(ack, c.form, c.header...); r.Status != http.StatusForbidden || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s, want a 403 page", c.name, r.Status, r.Header.Get("Content-Type"))
		}
	}
	if got, _ := e.store.GetAccessCode(context.Background(), code); !got.NeedsTroubleshooting {
		t.Fatal("a refused form acknowledged the code")
	}
	alice.origin = e.srv.URL
	r := alice.post(ack, url.Values{"note": {"checked on site"}, "csrf": {token}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/" {
		t.Fatalf("acknowledge: %d %s", r.Status, r.Header.Get("Location"))
	}
	got, _ := e.store.GetAccessCode(context.Background(), code)
	if got.NeedsTroubleshooting || got.AcknowledgedBy == nil || *got.AcknowledgedBy != "alice" || *got.AcknowledgementNote != "checked on site" {
		t.Errorf("after acknowledging: %+v", got)
	}
	// The page it lands on says so, once.
	if r := alice.get("/console/"); !strings.Contains(r.Body, "Acknowledged "+code) {
		t.Errorf("no message after acknowledging:\n%.600s", r.Body)
	}
	if r := alice.get("/console/"); strings.Contains(r.Body, "Acknowledged "+code) {
		t.Error("the message shows twice")
	}
	// Again: the first acknowledgement stands, and the page says so.
	alice.post(ack, url.Values{"note": {"again"}, "csrf": {token}})
	if r := alice.get("/console/"); !strings.Contains(r.Body, "was already acknowledged") {
		t.Errorf("acknowledging again says nothing:\n%.800s", r.Body)
	}
	if got, _ := e.store.GetAccessCode(context.Background(), code); *got.AcknowledgementNote != "checked on site" {
		t.Errorf("acknowledging again replaced the note: %q", *got.AcknowledgementNote)
	}
	// A code with no trouble: nothing to acknowledge, said on its page.
	active := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, active, "dev-1", time.Minute)
	activePage := "/console/codes/" + active
	if r := alice.post(activePage+"/acknowledge", url.Values{"csrf": {token}}); r.Status != http.StatusSeeOther || r.Header.Get("Location") != activePage {
		t.Errorf("acknowledge an active code: %d %s", r.Status, r.Header.Get("Location"))
	}
	if r := alice.get(activePage); !strings.Contains(r.Body, "There is nothing to acknowledge") {
		t.Errorf("acknowledging an active code says nothing:\n%.800s", r.Body)
	}
}

// Raw bodies are one click away on a code's page and in quarantine, always
// with the PIN masked.
func TestConsoleMasksPINs(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-1")
	// A verified delivery codewatch cannot use (no event_id): quarantined,
	// PIN and all.
	body := `{"event_type":"access_code.set_on_device","access_code_id":"` + code + `","code":"` + consolePIN + `"}`
	if _, err := e.store.Ingest(context.Background(), lifecycle.Delivery{MessageID: "msg_q1", Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	b := e.client()
	b.signIn(aliceToken)
	for _, path := range []string{"/console/codes/" + code, "/console/quarantine"} {
		r := b.get(path)
		if r.Status != http.StatusOK || !strings.Contains(r.Body, "<pre") || !strings.Contains(r.Body, "&#34;code&#34;: &#34;••46&#34;") {
			t.Errorf("%s: %d, want the raw JSON with the PIN masked:\n%.2000s", path, r.Status, r.Body)
		}
		if strings.Contains(r.Body, consolePIN) {
			t.Errorf("%s shows the PIN", path)
		}
	}
}

// The quarantine page's retry: a delivery usable now becomes an event and
// leaves; one still unusable stays, with its reason.
func TestConsoleQuarantineRetry(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := seamevent.NewID()
	good, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: code})
	var goodID, badID string
	ctx := context.Background()
	if err := e.pool.QueryRow(ctx, `INSERT INTO quarantine (message_id, reason, raw) VALUES ('msg_old', 'refused by an older version', $1)
		RETURNING id::text`, good).Scan(&goodID); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(ctx, `INSERT INTO quarantine (message_id, reason, raw) VALUES ('msg_bad', 'not_json', 'nope')
		RETURNING id::text`).Scan(&badID); err != nil {
		t.Fatal(err)
	}
	b := e.client()
	b.signIn(aliceToken)
	token := b.csrf("/console/quarantine")
	for _, c := range []struct{ id, want string }{
		{goodID, "is now a stored event"},
		{badID, "is still unusable (not_json"},
		{goodID, "no longer in quarantine"},
	} {
		r := b.post("/console/quarantine/"+c.id+"/retry", url.Values{"csrf": {token}})
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/quarantine" {
			t.Fatalf("retry %s: %d %s", c.id, r.Status, r.Header.Get("Location"))
		}
		if p := b.get("/console/quarantine"); !strings.Contains(p.Body, c.want) {
			t.Errorf("retry %s: the page does not say %q:\n%.1500s", c.id, c.want, p.Body)
		}
	}
	if got, err := e.store.GetAccessCode(ctx, code); err != nil || got.DeletionState != lifecycle.AwaitingRemoval {
		t.Errorf("the retried deletion: %+v %v", got, err)
	}
}

func TestConsoleSearch(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-search-1")
	b := e.client()
	b.signIn(aliceToken)
	for q, want := range map[string]string{
		code:                                   "/console/codes/" + code,
		" " + strings.ToUpper(code) + " ":      "/console/codes/" + code,
		"dev-search-1":                         "/console/locks/dev-search-1",
		"680d7c60-0a92-4e78-85bd-cb45155576b9": "/console/codes?workspace_id=680d7c60-0a92-4e78-85bd-cb45155576b9",
		"":                                     "/console/",
	} {
		r := b.get("/console/search?q=" + url.QueryEscape(q))
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != want {
			t.Errorf("search %q: %d %s, want %s", q, r.Status, r.Header.Get("Location"), want)
		}
	}
	r := b.get("/console/search?q=no-such-thing")
	if r.Status != http.StatusNotFound || !strings.Contains(r.Body, "Nothing found") || !strings.Contains(r.Body, `value="no-such-thing"`) {
		t.Errorf("search for nothing: %d\n%.600s", r.Status, r.Body)
	}
	r = b.get("/console/codes?device_id=dev-search-1")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, code) {
		t.Errorf("the codes on the lock: %d", r.Status)
	}
}

// Filters live in the URL; a bad one is a page saying what is wrong.
func TestConsoleFilters(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	failed := e.troubled("dev-a")
	delayed := seamevent.NewID()
	e.send(lifecycle.TypeDeleted, delayed, "dev-b", 10*time.Minute)
	e.send(lifecycle.TypeDelayInRemoving, delayed, "dev-b", 5*time.Minute)
	waiting := seamevent.NewID()
	e.send(lifecycle.TypeDeleted, waiting, "dev-b", time.Minute)
	b := e.client()
	b.signIn(aliceToken)
	for path, want := range map[string][]string{
		"/console/":                                       {failed, delayed},
		"/console/?reason=removal_delayed":                {delayed},
		"/console/?device_id=dev-a":                       {failed},
		"/console/codes?state=awaiting_removal":           {waiting},
		"/console/codes?state=failed&state=delayed":       {failed, delayed},
		"/console/codes?state=failed,delayed&sort=recent": {delayed, failed},
		"/console/codes?needs_troubleshooting=false":      {waiting},
	} {
		r := b.get(path)
		if r.Status != http.StatusOK {
			t.Errorf("%s: %d", path, r.Status)
			continue
		}
		for _, id := range []string{failed, delayed, waiting} {
			shown := strings.Contains(r.Body, `>`+id+`</a>`) || strings.Contains(r.Body, `</span>`+id+`</a>`)
			if shown != strings.Contains(strings.Join(want, " "), id) {
				t.Errorf("%s: shows %s: %v, want %v", path, id, shown, !shown)
			}
		}
	}
	for _, path := range []string{"/console/codes?state=gone", "/console/?reason=bored", "/console/codes?cursor=xyz", "/console/alerts?status=lost"} {
		if r := b.get(path); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "Invalid") || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d, want a 400 page", path, r.Status)
		}
	}
}

// Errors under /console are pages; the API keeps its JSON.
func TestConsoleErrorsArePages(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	b := e.client()
	b.signIn(aliceToken)
	for path, want := range map[string]struct {
		status int
		text   string
	}{
		"/console/nope":                       {http.StatusNotFound, "Page not found"},
		"/console/codes/" + seamevent.NewID(): {http.StatusNotFound, "No such access code"},
		"/console/assets/other.js":            {http.StatusNotFound, "Page not found"},
	} {
		r := b.get(path)
		if r.Status != want.status || !strings.Contains(r.Body, want.text) || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s\n%.300s", path, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
	r := b.get("/v1/nope")
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || !strings.Contains(r.Body, `"ok":false`) {
		t.Errorf("/v1/nope: %d %s", r.Status, r.Body)
	}
	// Starting up, or the database gone: a page that says so.
	e.ops.Available = func() error { return errors.New("starting: connecting to the database") }
	down := httptest.NewServer(handlers.NewOpsServer(e.ops))
	defer down.Close()
	b.base = down.URL
	r = b.get("/console/")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(r.Body, "cannot reach its database") {
		t.Errorf("while starting: %d\n%.300s", r.Status, r.Body)
	}
	if r = b.get("/console/signin"); r.Status != http.StatusSeeOther && r.Status != http.StatusOK {
		t.Errorf("the sign-in page while starting: %d", r.Status)
	}
}

// Pages are never cached or framed and load nothing from elsewhere;
// assets are embedded and cacheable under their content hash.
func TestConsoleHeadersAndAssets(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	b := e.client()
	r := b.get("/console/signin")
	for h, want := range map[string]string{
		"Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	assets := regexp.MustCompile(`(?:href|src)="(/console/assets/[^"]+)"`).FindAllStringSubmatch(r.Body, -1)
	if len(assets) != 2 {
		t.Fatalf("assets on the page: %v", assets)
	}
	for _, a := range assets {
		path := strings.ReplaceAll(a[1], "&amp;", "&")
		got := b.get(path)
		if got.Status != http.StatusOK || !strings.Contains(got.Header.Get("Cache-Control"), "immutable") || len(got.Body) < 500 {
			t.Errorf("%s: %d %s", path, got.Status, got.Header.Get("Cache-Control"))
		}
		if strings.Contains(got.Body, "http://") || strings.Contains(got.Body, "https://") {
			t.Errorf("%s loads something from elsewhere", path)
		}
	}
	// A link from another site: the browser kept the cookie back, so the
	// page loads itself again from here.
	r = b.get("/console/codes/x?a=1", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `http-equiv="refresh" content="0;url=/console/codes/x?a=1"`) {
		t.Errorf("a cross-site link: %d\n%s", r.Status, r.Body)
	}
}

// CodeAction is how a deployment adds buttons to a code's page (issue 11's
// reconcile and delete): shown only when configured and wanted, posted with
// CSRF protection, run for the signed-in person.
func TestConsoleCodeActions(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	e := newConsoleEnv(t, console.Console{Actions: []console.CodeAction{
		{Name: "reconcile", Label: "Reconcile now", Do: func(_ context.Context, id, by string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, "reconcile "+id+" "+by)
			return "Asked Seam about " + id, nil
		}},
		{Name: "delete", Label: "Request deletion", Danger: true, Confirm: "Yes, delete it in Seam",
			Shown: func(c *lifecycle.AccessCode) bool { return c.DeletionState == lifecycle.Active },
			Do: func(context.Context, string, string) (string, error) {
				return "", errors.New("Seam answered 502")
			}},
	}})
	code := e.troubled("dev-1")
	b := e.client()
	b.signIn(bobToken)
	page := b.get("/console/codes/" + code)
	if !strings.Contains(page.Body, `/actions/reconcile"`) || strings.Contains(page.Body, `/actions/delete"`) {
		t.Errorf("buttons: want reconcile, not delete (Shown says no):\n%.3000s", page.Body)
	}
	token := csrfField.FindStringSubmatch(page.Body)[1]
	if r := b.post("/console/codes/"+code+"/actions/reconcile", url.Values{}); r.Status != http.StatusForbidden || len(calls) != 0 {
		t.Errorf("an action without the form's token: %d, calls %v", r.Status, calls)
	}
	r := b.post("/console/codes/"+code+"/actions/reconcile", url.Values{"csrf": {token}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/codes/"+code {
		t.Fatalf("reconcile: %d %s", r.Status, r.Header.Get("Location"))
	}
	if want := "reconcile " + code + " bob"; len(calls) != 1 || calls[0] != want {
		t.Errorf("calls %v, want %q", calls, want)
	}
	if p := b.get("/console/codes/" + code); !strings.Contains(p.Body, "Asked Seam about "+code) {
		t.Error("the action's message is not shown")
	}
	b.post("/console/codes/"+code+"/actions/delete", url.Values{"csrf": {token}})
	if p := b.get("/console/codes/" + code); !strings.Contains(p.Body, "Request deletion: nothing done; tick") {
		t.Error("an action needing confirmation ran without it")
	}
	b.post("/console/codes/"+code+"/actions/delete", url.Values{"csrf": {token}, "confirm": {"yes"}})
	if p := b.get("/console/codes/" + code); !strings.Contains(p.Body, "Request deletion failed: Seam answered 502") {
		t.Error("the action's failure is not shown")
	}
	if r := b.post("/console/codes/"+code+"/actions/launch", url.Values{"csrf": {token}}); r.Status != http.StatusNotFound {
		t.Errorf("an action nobody configured: %d", r.Status)
	}

	// Without actions configured, no button.
	plain := newConsoleEnv(t, console.Console{})
	other := plain.troubled("dev-2")
	pb := plain.client()
	pb.signIn(aliceToken)
	if p := pb.get("/console/codes/" + other); strings.Contains(p.Body, "/actions/") {
		t.Error("a console without actions shows action buttons")
	}
}

// The console is on the ops listener only.
func TestConsoleNotOnPublicListener(t *testing.T) {
	pub := httptest.NewServer(handlers.NewPublicServer(&handlers.Public{Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler)}))
	defer pub.Close()
	for _, path := range []string{"/", "/console/", "/console/signin", "/console/assets/console.js"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, pub.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(string(body), "<html") {
				t.Errorf("public %s %s: %d %.100s", method, path, resp.StatusCode, body)
			}
		}
	}
}

// The alert outbox page: every delivery with its status and attempts,
// filtered by status in the URL.
func TestConsoleAlertsPage(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-1")
	b := e.client()
	b.signIn(aliceToken)
	r := b.get("/console/alerts")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, code) || !strings.Contains(r.Body, "Pending") {
		t.Fatalf("alerts: %d\n%.2000s", r.Status, r.Body)
	}
	if r := b.get("/console/alerts?status=given_up"); r.Status != http.StatusOK || strings.Contains(r.Body, ">"+code+"<") {
		t.Errorf("given up: %d, want none listed", r.Status)
	}
	if r := b.get("/console/codes/" + code); !strings.Contains(r.Body, "Needs troubleshooting") || !strings.Contains(r.Body, `<td data-label="Sink">log</td>`) {
		t.Errorf("the code's alerts:\n%.3000s", r.Body)
	}
}

// Locks: the list with its filters in the URL, and a lock's page with its
// codes.
func TestConsoleLocks(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("lock-page-1")
	b := e.client()
	b.signIn(aliceToken)
	r := b.get("/console/locks?has_unconfirmed_deletions=true")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "/console/locks/lock-page-1") {
		t.Fatalf("locks: %d\n%s", r.Status, r.Body)
	}
	r = b.get("/console/locks?has_unconfirmed_deletions=false")
	if r.Status != http.StatusOK || strings.Contains(r.Body, "/console/locks/lock-page-1") {
		t.Fatalf("locks without unconfirmed deletions lists the lock: %d", r.Status)
	}
	r = b.get("/console/locks/lock-page-1")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, code) || !strings.Contains(r.Body, "not reported") {
		t.Fatalf("lock page: %d\n%s", r.Status, r.Body)
	}
	if r := b.get("/console/locks/no-such-lock"); r.Status != http.StatusNotFound {
		t.Fatalf("unknown lock: %d", r.Status)
	}
	if r := b.get("/console/locks?online=maybe"); r.Status != http.StatusBadRequest {
		t.Fatalf("bad filter: %d", r.Status)
	}
}

// The unfiltered home page is rendered once and shared by its readers for a
// second (however many keep it open). What a reader relies on: after acting
// on a code (the page that follows carries the outcome) the list is fresh;
// a change made elsewhere shows within about a second; the page says when
// its figures were read; filtered views are never shared.
func TestConsoleTriageShared(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	first := e.troubled("dev-1")
	alice, bob := e.client(), e.client()
	alice.signIn(aliceToken)
	bob.signIn(bobToken)
	if r := bob.get("/console/"); !strings.Contains(r.Body, "t-"+first) || !strings.Contains(r.Body, "Figures as of <time") {
		t.Fatalf("triage lacks the troubled code or its figures' time:\n%.1500s", r.Body)
	}

	// Bob's read is shared; Alice acknowledges, and the page she lands on
	// is read afresh (and then shared).
	token := alice.csrf("/console/codes/" + first)
	if r := alice.post("/console/codes/"+first+"/acknowledge", url.Values{"note": {"gone"}, "csrf": {token}}); r.Status != http.StatusSeeOther {
		t.Fatalf("acknowledge: %d", r.Status)
	}
	if r := alice.get("/console/"); !strings.Contains(r.Body, "Acknowledged "+first) || strings.Contains(r.Body, "t-"+first) {
		t.Fatalf("after acknowledging, the triage still lists the code or says nothing:\n%.1500s", r.Body)
	}
	if r := bob.get("/console/"); strings.Contains(r.Body, "t-"+first) {
		t.Error("another reader still sees the acknowledged code after the fresh render")
	}

	// A code troubled by a webhook: shown to every reader within about a
	// second of the shared copy (plus one render).
	second := e.troubled("dev-2")
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(bob.get("/console/").Body, "t-"+second) {
		if time.Now().After(deadline) {
			t.Fatalf("a new troubled code is not on the shared triage after 3 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Filtered views are read for their reader, at once.
	third := e.troubled("dev-3")
	if r := bob.get("/console/?device_id=dev-3"); !strings.Contains(r.Body, "t-"+third) {
		t.Errorf("a filtered triage is not read afresh:\n%.1500s", r.Body)
	}
}

// Issue 19, point 6: the console's acknowledgement is bound to the trouble
// its page showed: the form carries the code's trouble_id, and when the
// trouble has changed since (a critical came), nothing is acknowledged and
// the page says so.
func TestConsoleAcknowledgesTheTroubleShown(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-1")
	alice := e.client()
	alice.signIn(aliceToken)
	page := "/console/codes/" + code
	shown, _ := e.store.GetAccessCode(context.Background(), code)
	r := alice.get(page)
	if shown.TroubleID == nil || !strings.Contains(r.Body, `name="trouble_id" value="`+*shown.TroubleID+`"`) {
		t.Fatalf("the acknowledge form does not carry the trouble shown (%v):\n%.2000s", shown.TroubleID, r.Body)
	}
	token := alice.csrf(page)
	// While the page is open, the lock reports the deleted code in use.
	e.send(lifecycle.TypeLockUnlocked, code, "dev-1", time.Minute)
	r = alice.post(page+"/acknowledge", url.Values{"note": {"checked"}, "csrf": {token}, "trouble_id": {*shown.TroubleID}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != page {
		t.Fatalf("stale acknowledge: %d %s", r.Status, r.Header.Get("Location"))
	}
	if got, _ := e.store.GetAccessCode(context.Background(), code); !got.NeedsTroubleshooting || got.AcknowledgedBy != nil {
		t.Fatalf("a stale page acknowledged the critical: %+v", got)
	}
	if r := alice.get(page); !strings.Contains(r.Body, "trouble changed since the page was shown") {
		t.Errorf("the page does not say why nothing was acknowledged:\n%.1500s", r.Body)
	}
	now, _ := e.store.GetAccessCode(context.Background(), code)
	r = alice.post(page+"/acknowledge", url.Values{"note": {"removed at the lock"}, "csrf": {token}, "trouble_id": {*now.TroubleID}})
	if got, _ := e.store.GetAccessCode(context.Background(), code); r.Status != http.StatusSeeOther || got.NeedsTroubleshooting {
		t.Fatalf("acknowledging the trouble shown now: %d, needs %v", r.Status, got.NeedsTroubleshooting)
	}
}
