package handlers

// The ops console: server-rendered pages on the ops listener (never the
// public one) for the people who watch deletions. Sign in with an ops token
// (console_session.go); triage, a code's evidence, acknowledging,
// quarantine and the alert outbox. Pages are html/template with their CSS
// and JavaScript embedded (handlers/console/); the views they render are in
// console_view.go.

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

// consolePrefix is where the console lives on the ops listener.
const consolePrefix = "/console"

// ConsoleStore is what the console reads and changes: the ops API's store
// and a few reads of its own (postgres/console.go).
type ConsoleStore interface {
	OpsStore
	// CodeEvidence returns the newest limit events naming a code, oldest
	// first, with raw bodies (masked before they are shown).
	CodeEvidence(ctx context.Context, id string, limit int) (*lifecycle.Evidence, error)
	// CodeAlerts returns every delivery of a code's alerts.
	CodeAlerts(ctx context.Context, id string) ([]lifecycle.AlertDelivery, error)
	ListDeliveries(ctx context.Context, f lifecycle.DeliveryFilter) ([]lifecycle.AlertDelivery, *lifecycle.DeliveryCursor, error)
	CountDeliveries(ctx context.Context) (map[string]int64, *time.Time, error)
	RetryQuarantined(ctx context.Context, id int64) (lifecycle.RetryOutcome, error)
}

// CodeAction is a button on a code's page beyond acknowledging: the hook for
// features that exist only in some deployments (issue 11's "reconcile now"
// and "request deletion" when the Seam API is configured). The button shows
// only for actions serve passes in Console.Actions, and only where Shown
// says so; pressing it posts (with CSRF protection) to
// /console/codes/{id}/actions/{Name}.
type CodeAction struct {
	// Name is the URL segment, e.g. "reconcile" or "delete".
	Name string
	// Label is the button's text, e.g. "Reconcile now".
	Label string
	// Help is one sentence beside the button saying what it does.
	Help string
	// Confirm, when set, is the label of a checkbox that must be ticked
	// for the action to run (a deletion), e.g. "Yes, delete this code".
	Confirm string
	// Danger styles the button as destructive.
	Danger bool
	// Shown reports whether the button belongs on this code's page (nil:
	// always).
	Shown func(code *lifecycle.AccessCode) bool
	// Do runs the action for the signed-in person `by` (the token's name)
	// and returns the message to show. A *lifecycle.Error with ENotFound
	// shows the not-found page; any other error is shown as a failure
	// message on the code's page.
	Do func(ctx context.Context, accessCodeID, by string) (string, error)
}

// Console configures the ops console (nil in Ops: no console).
type Console struct {
	Store ConsoleStore
	// PublicURL is CODEWATCH_PUBLIC_URL: https makes the cookies Secure,
	// and its Origin is accepted beside the request's own.
	PublicURL *url.URL
	// SessionTTL is how long a sign-in lasts (CODEWATCH_SESSION_TTL).
	SessionTTL time.Duration
	// Refresh is how often live pages update themselves (default 5s).
	Refresh time.Duration
	// Actions are the extra buttons of a code's page (see CodeAction).
	Actions []CodeAction
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// console is the running console.
type console struct {
	*Console
	keys   []sessionKey
	ck     cookies
	logger *slog.Logger
	pages  *pages
	// triageCache: the unfiltered home page, shared (sharedTriage).
	triageCache triageCache
}

// registerConsole adds the console's routes to the ops router.
func registerConsole(e *echo.Echo, o *Ops) {
	cfg := *o.Console
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	k := &console{Console: &cfg, keys: deriveSessionKeys(o.Tokens), ck: cookies{publicURL: cfg.PublicURL},
		logger: o.Logger, pages: mustParsePages(cfg.Now)}

	// Console errors are pages, not JSON.
	apiErrors := e.HTTPErrorHandler
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		p := c.Request().URL.Path
		if p == consolePrefix || strings.HasPrefix(p, consolePrefix+"/") {
			k.errorPage(err, c)
			return
		}
		apiErrors(err, c)
	}

	e.GET(consolePrefix, func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, consolePrefix+"/") })
	g := e.Group(consolePrefix, k.headers)
	g.GET("/assets/:name", k.asset)
	g.GET("/signin", k.signinPage)
	g.POST("/signin", k.signin)
	// Everything else needs a session, and the database.
	s := g.Group("", k.requireSession, Gate(o.Available))
	s.POST("/signout", k.signout)
	s.GET("/", k.triage)
	s.GET("/codes", k.codes)
	s.GET("/codes/:access_code_id", k.code)
	s.GET("/locks", k.locks)
	s.GET("/locks/:device_id", k.lock)
	s.POST("/codes/:access_code_id/acknowledge", k.acknowledge)
	s.POST("/codes/:access_code_id/actions/:action", k.action)
	s.GET("/quarantine", k.quarantine)
	s.POST("/quarantine/:quarantine_id/retry", k.retryQuarantined)
	s.GET("/alerts", k.alerts)
	s.GET("/search", k.search)
	g.RouteNotFound("/*", func(c echo.Context) error { return echo.ErrNotFound })
}

// headers: console pages hold door-lock evidence; they are never cached,
// framed, or allowed to load anything from elsewhere.
func (k *console) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// requireSession lets a signed-in request through; others go to the
// sign-in page (and come back after), or get a 401 for a live refresh.
func (k *console) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now())
		if s == nil {
			if r.Header.Get(liveHeader) != "" {
				return c.String(http.StatusUnauthorized, "signed out")
			}
			if r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.Header.Get("Sec-Fetch-Mode") == "navigate" {
				// A link from elsewhere (Slack, an alert, a ticket): the
				// browser kept the SameSite=Strict cookie back. Load the
				// page again from here, which sends it.
				return k.render(c, http.StatusOK, "reopen", page{Title: "Opening", Data: safeNext(r.URL.RequestURI())})
			}
			next := consolePrefix + "/"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			return c.Redirect(http.StatusSeeOther, consolePrefix+"/signin?next="+url.QueryEscape(next))
		}
		c.Set("console_session", s)
		if r.Method == http.MethodPost {
			if err := k.ck.sameOrigin(c); err != nil {
				return NewError(http.StatusForbidden, "forbidden", err.Error())
			}
			if !s.checkCSRF(c.FormValue(csrfField)) {
				return NewError(http.StatusForbidden, "forbidden", "This form has expired (or was not made by the console). Go back, reload the page and send it again.")
			}
		}
		return next(c)
	}
}

func sessionOf(c echo.Context) *session {
	s, _ := c.Get("console_session").(*session)
	return s
}

// --- sign-in and sign-out ---

type signinData struct {
	Next, CSRF, Error string
}

func (k *console) signinPage(c echo.Context) error {
	next := safeNext(c.QueryParam("next"))
	if s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now()); s != nil {
		return c.Redirect(http.StatusSeeOther, next)
	}
	return k.showSignin(c, http.StatusOK, next, "")
}

func (k *console) showSignin(c echo.Context, status int, next, problem string) error {
	tok := k.ck.get(c, signinCookie)
	if len(tok) != 22 {
		tok = randomString(16)
		k.ck.set(c, signinCookie, tok, consolePrefix+"/signin", time.Hour)
	}
	p := page{Title: "Sign in", Data: signinData{Next: next, CSRF: tok, Error: problem}}
	if c.QueryParam("signed_out") == "1" && problem == "" {
		p.Flash = &flash{Kind: "ok", Text: "You are signed out."}
	}
	return k.render(c, status, "signin", p)
}

func (k *console) signin(c echo.Context) error {
	next := safeNext(c.FormValue("next"))
	if err := k.ck.sameOrigin(c); err != nil {
		return NewError(http.StatusForbidden, "forbidden", err.Error())
	}
	given := c.FormValue(csrfField)
	if want := k.ck.get(c, signinCookie); want == "" || !constantTimeEqual(given, want) {
		return k.showSignin(c, http.StatusForbidden, next, "The sign-in form had expired. Please enter your token again.")
	}
	token := strings.TrimSpace(c.FormValue("token"))
	// Every token is compared, in constant time, as the API does.
	var match *sessionKey
	for i, t := range k.keys {
		if token != "" && constantTimeEqual(token, t.token) {
			match = &k.keys[i]
		}
	}
	if match == nil {
		k.logger.Warn("console sign-in refused", "remote_ip", c.RealIP())
		return k.showSignin(c, http.StatusUnauthorized, next, "That token is not one of this codewatch's ops tokens (CODEWATCH_OPS_TOKEN).")
	}
	s, value := newSession(*match, k.Now(), k.SessionTTL)
	k.ck.set(c, k.ck.sessionName(c), value, "/", k.SessionTTL)
	k.ck.set(c, signinCookie, "", consolePrefix+"/signin", 0)
	k.logger.Info("console sign-in", "name", s.Name, "remote_ip", c.RealIP(), "expires_at", time.Unix(s.ExpiresAt, 0).UTC())
	return c.Redirect(http.StatusSeeOther, next)
}

func (k *console) signout(c echo.Context) error {
	s := sessionOf(c)
	k.ck.set(c, k.ck.sessionName(c), "", "/", 0)
	k.logger.Info("console sign-out", "name", s.Name)
	return c.Redirect(http.StatusSeeOther, consolePrefix+"/signin?signed_out=1")
}

// setFlash leaves a message for the next page this browser shows.
func (k *console) setFlash(c echo.Context, kind, text string) {
	s := sessionOf(c)
	k.ck.set(c, flashCookie, seal(s.key, "flash", flash{Kind: kind, Text: text, SID: s.ID}), consolePrefix+"/", time.Minute)
}

// takeFlash returns (and clears) the message left for this session.
func (k *console) takeFlash(c echo.Context) *flash {
	v := k.ck.get(c, flashCookie)
	if v == "" {
		return nil
	}
	k.ck.set(c, flashCookie, "", consolePrefix+"/", 0)
	s := sessionOf(c)
	var f flash
	if s == nil || !unseal(s.key, "flash", v, &f) || f.SID != s.ID {
		return nil
	}
	return &f
}

// --- pages ---

// triageLimit is how many codes the home page lists, most urgent first;
// the rest are a link to the codes list.
const triageLimit = 50

// The unfiltered home page's counts and codes are rendered once and shared
// by every reader for triageShared: with many people keeping it open (and
// their pages refreshing every few seconds) the database and the templates
// do the work once a second, not once per reader. An older copy is served
// only while a fresh one is being rendered, and never past triageStale.
// The page says when its figures were read. A reader who has just acted
// (acknowledged, retried...) gets a fresh render, which the others then
// share.
const (
	triageShared = time.Second
	triageStale  = 5 * time.Second
)

type triageData struct {
	Filter   codeFilter
	Filtered bool
	// Counts and Attention are the rendered "triage-counts" and
	// "triage-attention" (triageView).
	Counts, Attention template.HTML
}

// triageView is what the counts and the codes needing attention show.
type triageView struct {
	Summary  *lifecycle.StatusSummary
	States   []countView
	Reasons  []countView
	Codes    []codeView
	More     int64
	Filtered bool
	// Waiting counts the unconfirmed deletions not (yet) in trouble.
	Waiting int64
}

// triageFragments is a rendered triage: its counts, its codes and how many
// codes it lists.
type triageFragments struct {
	at                time.Time
	counts, attention template.HTML
	listed            int
}

// triageCache holds the unfiltered triage shared by every reader.
type triageCache struct {
	mu         sync.Mutex
	entry      *triageFragments
	refreshing bool
}

func (k *console) triage(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := parseCodeFilter(c, false)
	if err != nil {
		return err
	}
	p := k.page(c, "Triage", "triage", true, nil)
	var fr *triageFragments
	if f.empty() && p.Flash == nil {
		fr, err = k.sharedTriage(ctx)
	} else {
		fr, err = k.renderTriage(ctx, f)
		if err == nil && f.empty() {
			k.keepTriage(fr)
		}
	}
	if err != nil {
		return err
	}
	p.Data = triageData{Filter: f, Filtered: !f.empty(), Counts: fr.counts, Attention: fr.attention}
	if fr.listed > 0 {
		p.Title = fmt.Sprintf("(%d) Triage", fr.listed)
	}
	return k.render(c, http.StatusOK, "triage", p)
}

// sharedTriage returns the unfiltered triage: the shared copy while it is
// fresh; the shared copy while one fresh render runs in the background
// (started here when none is); rendered now when there is none or it is
// past triageStale.
func (k *console) sharedTriage(ctx context.Context) (*triageFragments, error) {
	tc := &k.triageCache
	tc.mu.Lock()
	e, age := tc.entry, time.Duration(0)
	if e != nil {
		age = time.Since(e.at) // the machine's clock, not the page's (tests set that)
	}
	switch {
	case e != nil && age < triageShared:
		tc.mu.Unlock()
		return e, nil
	case e != nil && age < triageStale:
		if !tc.refreshing {
			tc.refreshing = true
			// Detached from this request (which is answered at once), with
			// the store's own deadline on every statement.
			bg := context.WithoutCancel(ctx)
			go func() {
				fr, err := k.renderTriage(bg, codeFilter{})
				if err == nil {
					k.keepTriage(fr)
				} else {
					k.logger.WarnContext(bg, "console triage render failed", "error", err)
				}
				tc.mu.Lock()
				tc.refreshing = false
				tc.mu.Unlock()
			}()
		}
		tc.mu.Unlock()
		return e, nil
	}
	tc.mu.Unlock()
	fr, err := k.renderTriage(ctx, codeFilter{})
	if err != nil {
		return nil, err
	}
	k.keepTriage(fr)
	return fr, nil
}

// keepTriage shares fr unless a newer render is shared already.
func (k *console) keepTriage(fr *triageFragments) {
	tc := &k.triageCache
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.entry == nil || fr.at.After(tc.entry.at) {
		tc.entry = fr
	}
}

// renderTriage reads and renders the counts and the codes needing
// attention that f selects.
func (k *console) renderTriage(ctx context.Context, f codeFilter) (*triageFragments, error) {
	at := time.Now()
	sum, err := k.Store.Summarize(ctx)
	if err != nil {
		return nil, err
	}
	yes := true
	lf := f.listFilter()
	lf.NeedsTroubleshooting, lf.Sort, lf.Limit = &yes, lifecycle.SortUrgency, triageLimit
	codes, next, err := k.Store.ListAccessCodes(ctx, lf)
	if err != nil {
		return nil, err
	}
	d := triageView{Summary: sum, Filtered: !f.empty()}
	d.States, d.Reasons = stateCounts(sum), reasonCounts(sum)
	for st, n := range sum.DeletionStates {
		if st.Unconfirmed() {
			d.Waiting += n
		}
	}
	d.Waiting = max(0, d.Waiting-sum.NeedsTroubleshooting)
	for i := range codes {
		d.Codes = append(d.Codes, newCodeView(&codes[i]))
	}
	if next != nil && !d.Filtered {
		d.More = sum.NeedsTroubleshooting - int64(len(codes))
	} else if next != nil {
		d.More = -1 // an unknown number more
	}
	fr := &triageFragments{at: at, listed: len(codes)}
	set := k.pages.sets["triage"]
	var b bytes.Buffer
	if err := set.ExecuteTemplate(&b, "triage-counts", d); err != nil {
		return nil, fmt.Errorf("render triage counts: %w", err)
	}
	fr.counts = template.HTML(b.String()) // rendered by html/template: escaped
	b.Reset()
	if err := set.ExecuteTemplate(&b, "triage-attention", d); err != nil {
		return nil, fmt.Errorf("render triage codes: %w", err)
	}
	fr.attention = template.HTML(b.String())
	return fr, nil
}

type codesData struct {
	Codes  []codeView
	Filter codeFilter
	Next   string
	States []lifecycle.DeletionState
}

func (k *console) codes(c echo.Context) error {
	f, err := parseCodeFilter(c, true)
	if err != nil {
		return err
	}
	lf := f.listFilter()
	lf.Limit = 100
	codes, next, err := k.Store.ListAccessCodes(c.Request().Context(), lf)
	if err != nil {
		return err
	}
	d := codesData{Filter: f, States: lifecycle.States}
	for i := range codes {
		d.Codes = append(d.Codes, newCodeView(&codes[i]))
	}
	if cur := ListCursorOut(next, lf.Sort); cur != nil {
		d.Next = f.url(*cur)
	}
	return k.render(c, http.StatusOK, "codes", k.page(c, "Codes", "codes", false, d))
}

type locksData struct {
	Locks               []lifecycle.Device
	Online, Unconfirmed string
	Next                string
}

// locks lists locks, offline and with unconfirmed deletions first when
// filtered so; filters live in the URL.
func (k *console) locks(c echo.Context) error {
	q := c.QueryParams()
	var f lifecycle.DeviceFilter
	d := locksData{Online: q.Get("online"), Unconfirmed: q.Get("has_unconfirmed_deletions")}
	for _, p := range []struct {
		name, v string
		dst     **bool
	}{{"online", d.Online, &f.Online}, {"has_unconfirmed_deletions", d.Unconfirmed, &f.HasUnconfirmedDeletions}} {
		if p.v == "" {
			continue
		}
		b, err := strconv.ParseBool(p.v)
		if err != nil {
			return InvalidParam(p.name, "must be true or false")
		}
		*p.dst = &b
	}
	cursor, err := ParseCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	f.Cursor, f.Limit = cursor, 100
	locks, next, err := k.Store.ListDevices(c.Request().Context(), f)
	if err != nil {
		return err
	}
	d.Locks = locks
	if cur := CursorOut(next); cur != nil {
		v := url.Values{"cursor": {*cur}}
		if d.Online != "" {
			v.Set("online", d.Online)
		}
		if d.Unconfirmed != "" {
			v.Set("has_unconfirmed_deletions", d.Unconfirmed)
		}
		d.Next = consolePrefix + "/locks?" + v.Encode()
	}
	return k.render(c, http.StatusOK, "locks", k.page(c, "Locks", "locks", false, d))
}

type lockData struct {
	Lock  *lifecycle.Device
	Codes []codeView
}

// lock is one lock's page: its connectivity and its codes, most urgent
// first.
func (k *console) lock(c echo.Context) error {
	id := c.Param("device_id")
	d, err := GetDevice(c.Request().Context(), k.Store, id)
	if err != nil {
		return err
	}
	data := lockData{Lock: d}
	for i := range d.AccessCodes {
		data.Codes = append(data.Codes, newCodeView(&d.AccessCodes[i]))
	}
	return k.render(c, http.StatusOK, "lock", k.page(c, "Lock "+id, "locks", true, data))
}

// timelineLimit is how many of a code's newest events its page shows.
const timelineLimit = 300

type codeData struct {
	Code      codeView
	Evidence  *lifecycle.Evidence
	Timeline  []eventView
	Alerts    []alertView
	Actions   []CodeAction
	CanAck    bool
	Truncated int
}

func (k *console) code(c echo.Context) error {
	id := c.Param("access_code_id")
	ctx := c.Request().Context()
	code, err := GetAccessCode(ctx, k.Store, id)
	if err != nil {
		return err
	}
	ev, err := k.Store.CodeEvidence(ctx, id, timelineLimit)
	if err != nil {
		return err
	}
	deliveries, err := k.Store.CodeAlerts(ctx, id)
	if err != nil {
		return err
	}
	d := codeData{Code: newCodeView(code), Evidence: ev, Alerts: alertViews(deliveries),
		CanAck: code.NeedsTroubleshooting, Truncated: ev.Total - len(ev.Events)}
	for _, e := range ev.Events {
		d.Timeline = append(d.Timeline, newEventView(e))
	}
	for _, a := range k.Actions {
		if a.Shown == nil || a.Shown(code) {
			d.Actions = append(d.Actions, a)
		}
	}
	return k.render(c, http.StatusOK, "code", k.page(c, id, "codes", true, d))
}

func (k *console) acknowledge(c echo.Context) error {
	id := c.Param("access_code_id")
	if !ValidText(id) {
		return AccessCodeNotFound(id)
	}
	note := strings.TrimSpace(c.FormValue("note"))
	if len(note) > 2000 || strings.ContainsRune(note, 0) || !utf8.ValidString(note) {
		k.setFlash(c, "error", "The note must be text of at most 2000 bytes; nothing was acknowledged.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	}
	troubleID := c.FormValue("trouble_id")
	if !ValidText(troubleID) {
		troubleID = "\x00invalid" // matches no trouble: refused as changed
	}
	by := sessionOf(c).Name
	_, changed, err := k.Store.Acknowledge(c.Request().Context(), id, by, note, troubleID)
	switch lifecycle.ErrorCode(err) {
	case "":
	case lifecycle.ENotFound:
		return AccessCodeNotFound(id)
	case lifecycle.ETroubleChanged:
		k.setFlash(c, "error", "Nothing was acknowledged: this code's trouble changed since the page was shown. Read it again below, then acknowledge what it shows now.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	case lifecycle.EConflict:
		k.setFlash(c, "error", "There is nothing to acknowledge: this code does not need troubleshooting.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	default:
		return err
	}
	if changed {
		k.logger.Info("trouble acknowledged", "access_code_id", id, "acknowledged_by", by, "via", "console")
		k.setFlash(c, "ok", "Acknowledged "+id+": it has left the triage list and a resolution alert is on its way.")
	} else {
		k.setFlash(c, "ok", id+" was already acknowledged; the first acknowledgement stands.")
	}
	return c.Redirect(http.StatusSeeOther, consolePrefix+"/")
}

func (k *console) action(c echo.Context) error {
	id := c.Param("access_code_id")
	if !ValidText(id) {
		return AccessCodeNotFound(id)
	}
	i := slices.IndexFunc(k.Actions, func(a CodeAction) bool { return a.Name == c.Param("action") })
	if i < 0 {
		return echo.ErrNotFound
	}
	a := k.Actions[i]
	if a.Confirm != "" && c.FormValue("confirm") != "yes" {
		k.setFlash(c, "error", a.Label+": nothing done; tick “"+a.Confirm+"” to confirm.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	}
	by := sessionOf(c).Name
	msg, err := a.Do(c.Request().Context(), id, by)
	switch {
	case lifecycle.ErrorCode(err) == lifecycle.ENotFound:
		return AccessCodeNotFound(id)
	case err != nil:
		k.logger.Warn("console action failed", "action", a.Name, "access_code_id", id, "by", by, "error", err)
		k.setFlash(c, "error", a.Label+" failed: "+err.Error())
	default:
		k.logger.Info("console action", "action", a.Name, "access_code_id", id, "by", by)
		k.setFlash(c, "ok", msg)
	}
	return c.Redirect(http.StatusSeeOther, codeURL(id))
}

type quarantineData struct {
	Items []quarantineView
	Next  string
}

func (k *console) quarantine(c echo.Context) error {
	cursor, err := ParseCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	items, next, err := k.Store.ListQuarantine(c.Request().Context(), 50, cursor)
	if err != nil {
		return err
	}
	d := quarantineData{}
	for _, q := range items {
		d.Items = append(d.Items, newQuarantineView(q))
	}
	if n := CursorOut(next); n != nil {
		d.Next = consolePrefix + "/quarantine?cursor=" + url.QueryEscape(*n)
	}
	return k.render(c, http.StatusOK, "quarantine", k.page(c, "Quarantine", "quarantine", false, d))
}

func (k *console) retryQuarantined(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("quarantine_id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.ErrNotFound
	}
	out, err := k.Store.RetryQuarantined(c.Request().Context(), id)
	switch {
	case lifecycle.ErrorCode(err) == lifecycle.ENotFound:
		k.setFlash(c, "error", fmt.Sprintf("Delivery %d is no longer in quarantine (retried already?).", id))
	case err != nil:
		return err
	case out.Outcome == lifecycle.Stored:
		k.logger.Info("quarantine retried", "quarantine_id", id, "outcome", out.Outcome, "by", sessionOf(c).Name)
		k.setFlash(c, "ok", fmt.Sprintf("Delivery %d is now a stored event and has left quarantine.", id))
	case out.Outcome == lifecycle.Duplicate:
		k.logger.Info("quarantine retried", "quarantine_id", id, "outcome", out.Outcome, "by", sessionOf(c).Name)
		k.setFlash(c, "ok", fmt.Sprintf("Delivery %d was an event stored already; it has left quarantine.", id))
	default:
		k.setFlash(c, "error", fmt.Sprintf("Delivery %d is still unusable (%s); it stays in quarantine.", id, out.Reason))
	}
	return c.Redirect(http.StatusSeeOther, consolePrefix+"/quarantine")
}

type alertsData struct {
	Status, Sink string
	Counts       map[string]int64
	Oldest       *time.Time
	Tabs         []tabView
	Deliveries   []lifecycle.AlertDelivery
	Next         string
}

func (k *console) alerts(c echo.Context) error {
	f := lifecycle.DeliveryFilter{Status: c.QueryParam("status"), Sink: c.QueryParam("sink"), Limit: 100}
	switch f.Status {
	case "", lifecycle.DeliveryPending, lifecycle.DeliverySent, lifecycle.DeliveryGivenUp:
	default:
		return InvalidParam("status", "must be pending, sent or given_up")
	}
	if !ValidText(f.Sink) {
		return InvalidParam("sink", "must be a sink's name")
	}
	if v := c.QueryParam("cursor"); v != "" {
		raw, err := b64.DecodeString(v)
		alertID, sink, ok := strings.Cut(string(raw), "/")
		if err != nil || !ok || !uuidLike(alertID) || !ValidText(sink) {
			return InvalidParam("cursor", "not a cursor made by this page")
		}
		f.Before = &lifecycle.DeliveryCursor{AlertID: alertID, Sink: sink}
	}
	ctx := c.Request().Context()
	counts, oldest, err := k.Store.CountDeliveries(ctx)
	if err != nil {
		return err
	}
	list, next, err := k.Store.ListDeliveries(ctx, f)
	if err != nil {
		return err
	}
	d := alertsData{Status: f.Status, Sink: f.Sink, Counts: counts, Oldest: oldest, Deliveries: list}
	var total int64
	for _, n := range counts {
		total += n
	}
	d.Tabs = []tabView{{"", "All", total}, {lifecycle.DeliveryPending, "Pending", counts[lifecycle.DeliveryPending]},
		{lifecycle.DeliverySent, "Delivered", counts[lifecycle.DeliverySent]}, {lifecycle.DeliveryGivenUp, "Given up", counts[lifecycle.DeliveryGivenUp]}}
	if next != nil {
		q := url.Values{"cursor": {b64.EncodeToString([]byte(next.AlertID + "/" + next.Sink))}}
		if f.Status != "" {
			q.Set("status", f.Status)
		}
		if f.Sink != "" {
			q.Set("sink", f.Sink)
		}
		d.Next = consolePrefix + "/alerts?" + q.Encode()
	}
	return k.render(c, http.StatusOK, "alerts", k.page(c, "Alerts", "alerts", true, d))
}

func uuidLike(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", r):
			return false
		}
	}
	return true
}

type searchData struct {
	Q string
}

// search finds what an id names: an access code (its page), a lock or a
// workspace (the codes on it).
func (k *console) search(c echo.Context) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	if q == "" {
		return c.Redirect(http.StatusSeeOther, consolePrefix+"/")
	}
	if !ValidText(q) {
		return k.render(c, http.StatusNotFound, "search", k.page(c, "Not found", "", false, searchData{Q: q}))
	}
	ctx := c.Request().Context()
	// Ids are pasted from Seam's console, an alert or a ticket; Seam's are
	// lower-case UUIDs.
	for _, cand := range slices.Compact([]string{q, strings.ToLower(q)}) {
		_, err := k.Store.GetAccessCode(ctx, cand)
		if err == nil {
			return c.Redirect(http.StatusSeeOther, codeURL(cand))
		}
		if lifecycle.ErrorCode(err) != lifecycle.ENotFound {
			return err
		}
		// A lock: its own page.
		if _, err := k.Store.GetDevice(ctx, cand); err == nil {
			return c.Redirect(http.StatusSeeOther, lockURL(cand))
		} else if lifecycle.ErrorCode(err) != lifecycle.ENotFound {
			return err
		}
		for _, by := range []string{"device_id", "workspace_id"} {
			f := lifecycle.ListFilter{Sort: lifecycle.SortRecent, Limit: 1}
			if by == "device_id" {
				f.DeviceID = cand
			} else {
				f.WorkspaceID = cand
			}
			codes, _, err := k.Store.ListAccessCodes(ctx, f)
			if err != nil {
				return err
			}
			if len(codes) > 0 {
				return c.Redirect(http.StatusSeeOther, consolePrefix+"/codes?"+url.Values{by: {cand}}.Encode())
			}
		}
	}
	return k.render(c, http.StatusNotFound, "search", k.page(c, "Not found", "", false, searchData{Q: q}))
}

// --- filters ---

// codeFilter is a code list's filter as it stands in the URL.
type codeFilter struct {
	States               []lifecycle.DeletionState
	Reason               string
	NeedsTroubleshooting string // "", "true" or "false"
	WorkspaceID          string
	DeviceID             string
	Sort                 string
	Cursor               *lifecycle.ListCursor
}

func (f codeFilter) empty() bool {
	return len(f.States) == 0 && f.Reason == "" && f.NeedsTroubleshooting == "" && f.WorkspaceID == "" && f.DeviceID == ""
}

// HasState reports whether the filter selects state s (for checkboxes).
func (f codeFilter) HasState(s lifecycle.DeletionState) bool { return slices.Contains(f.States, s) }

func (f codeFilter) listFilter() lifecycle.ListFilter {
	lf := lifecycle.ListFilter{States: f.States, Reason: f.Reason, WorkspaceID: f.WorkspaceID,
		DeviceID: f.DeviceID, Sort: f.Sort, Cursor: f.Cursor}
	if f.NeedsTroubleshooting != "" {
		b := f.NeedsTroubleshooting == "true"
		lf.NeedsTroubleshooting = &b
	}
	return lf
}

// url is the codes page with this filter, at cursor ("" for the first page).
func (f codeFilter) url(cursor string) string {
	q := url.Values{}
	for _, s := range f.States {
		q.Add("state", string(s))
	}
	for k, v := range map[string]string{"reason": f.Reason, "needs_troubleshooting": f.NeedsTroubleshooting,
		"workspace_id": f.WorkspaceID, "device_id": f.DeviceID, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Sort == lifecycle.SortRecent {
		q.Set("sort", f.Sort)
	}
	return consolePrefix + "/codes?" + q.Encode()
}

// parseCodeFilter reads a list's filter from the query (the home page
// takes workspace, lock and reason; the codes page all of them). A state
// may be given as repeated parameters (checkboxes) or a comma list (the
// API's form).
func parseCodeFilter(c echo.Context, full bool) (codeFilter, error) {
	q := c.QueryParams()
	f := codeFilter{Reason: q.Get("reason"), WorkspaceID: strings.TrimSpace(q.Get("workspace_id")),
		DeviceID: strings.TrimSpace(q.Get("device_id")), Sort: lifecycle.SortUrgency}
	for name, v := range map[string]string{"workspace_id": f.WorkspaceID, "device_id": f.DeviceID} {
		if !ValidText(v) {
			return f, InvalidParam(name, "must be an id of at most 255 bytes of text")
		}
	}
	if f.Reason != "" && !slices.Contains(lifecycle.Reasons, f.Reason) {
		return f, InvalidParam("reason", fmt.Sprintf("%q is not one of %s", f.Reason, strings.Join(lifecycle.Reasons, ", ")))
	}
	if !full {
		return f, nil
	}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			st := lifecycle.DeletionState(strings.TrimSpace(s))
			if st == "" {
				continue
			}
			if !ValidState(st) {
				return f, InvalidParam("state", fmt.Sprintf("%q is not one of %s", st, StatesList()))
			}
			if !slices.Contains(f.States, st) {
				f.States = append(f.States, st)
			}
		}
	}
	switch v := q.Get("needs_troubleshooting"); v {
	case "", "true", "false":
		f.NeedsTroubleshooting = v
	default:
		return f, InvalidParam("needs_troubleshooting", "must be true or false")
	}
	switch v := q.Get("sort"); v {
	case "", lifecycle.SortUrgency:
	case lifecycle.SortRecent:
		f.Sort = v
	default:
		return f, InvalidParam("sort", "must be urgency or recent")
	}
	var err error
	f.Cursor, err = ParseListCursor(q.Get("cursor"), f.Sort)
	return f, err
}

// --- errors ---

type errorData struct {
	Status    int
	Heading   string
	Message   string
	RequestID string
}

// errorPage renders any error under /console as a page.
func (k *console) errorPage(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := AsAPIError(err)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	d := errorData{Status: ae.Status, RequestID: rid, Message: ae.Message}
	switch {
	case ae.Type == "access_code_not_found":
		d.Heading = "No such access code"
		d.Message = "codewatch has no access code " + fmt.Sprint(ae.Data["access_code_id"]) + ". It knows a code once Seam has sent an event about it."
	case ae.Status == http.StatusNotFound:
		d.Heading, d.Message = "Page not found", "There is no such page in the console."
	case ae.Status == http.StatusServiceUnavailable:
		d.Heading = "codewatch cannot reach its database"
		d.Message = "The page will work again once it can (" + ae.Message + "). Try again in a moment."
		k.logger.Debug("console unavailable", "path", c.Path(), "request_id", rid, "error", err)
	case ae.Status == http.StatusForbidden:
		d.Heading = "Not sent"
	case ae.Status >= 500:
		d.Heading = "Something went wrong"
		d.Message = "codewatch could not show this page. The error is logged with request id " + rid + "."
		k.logger.Error("console request failed", "status", ae.Status, "method", c.Request().Method,
			"path", c.Path(), "request_id", rid, "error", err)
	case ae.Status == http.StatusMethodNotAllowed:
		d.Heading, d.Message = "Not allowed", "This page cannot be used that way."
	default:
		d.Heading = "That did not work"
	}
	p := page{Title: d.Heading, Data: d}
	if s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now()); s != nil {
		c.Set("console_session", s)
		p = k.page(c, d.Heading, "", false, d)
	}
	if err := k.render(c, ae.Status, "error", p); err != nil {
		k.logger.Error("console error page failed", "error", err)
	}
}
