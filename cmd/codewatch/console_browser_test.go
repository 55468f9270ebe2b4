package main

// The ops console in a real browser: Debian's Chromium driven by chromedp
// against the real binary and Postgres. Without Chromium the test skips,
// unless CODEWATCH_REQUIRE_CHROMIUM=1 (set by CI) makes it fail.
//
// CODEWATCH_UPDATE_SCREENSHOTS=1 writes the screenshots it takes to
// docs/console/ (the README shows them); otherwise they go to a temporary
// directory.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
	"github.com/chromedp/chromedp/kb"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/seamevent"
)

// chromium returns the path of a Chromium (or Chrome) binary, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "the console's browser tests need Chromium (Debian: apt-get install chromium)"
	if os.Getenv("CODEWATCH_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg + "; CODEWATCH_REQUIRE_CHROMIUM=1 makes its absence a failure")
	}
	t.Skip(msg + "; skipped (CODEWATCH_REQUIRE_CHROMIUM=1 makes this a failure)")
	return ""
}

// browser is one headless Chromium tab for a test.
type browser struct {
	t   *testing.T
	ctx context.Context
	// shots is where screenshots go.
	shots string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("lang", "en-GB"),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root (CI, containers).
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, shots: t.TempDir()}
	if os.Getenv("CODEWATCH_UPDATE_SCREENSHOTS") == "1" {
		b.shots = filepath.Join("..", "..", "docs", "console")
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The first action starts the browser, which lives as long as the
	// context it is given: b.ctx, not one of do's short-lived ones.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium(t), err)
	}
	return b
}

// in returns the browser for subtest t (failures are t's).
func (b *browser) in(t *testing.T) *browser {
	c := *b
	c.t = t
	return &c
}

// do runs steps, each with a deadline, failing the test at the first error.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v (at %s)", what, err, b.url())
	}
}

// load runs steps that make the tab load another page (a link, a form), and
// waits until the new page has loaded.
func (b *browser) load(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.eval(`window.__oldPage = true`, nil)
	b.do(what, steps...)
	b.waitFor(what+": the new page", `!window.__oldPage && document.readyState === 'complete'`, 15*time.Second)
}

// eval evaluates a JavaScript expression and decodes its value into out.
func (b *browser) eval(js string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		b.t.Fatalf("browser: evaluate %.60q: %v", js, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("browser: evaluate %.60q: %s: %v", js, raw, err)
		}
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel), &s)
	return s
}

func (b *browser) url() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// waitFor waits until the JavaScript condition is true, through
// navigations.
func (b *browser) waitFor(what, cond string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: waited %s for %s (%v) at %s", timeout, what, err, b.url())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the viewport as name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// checkPage checks what every console page promises at the current width:
// nothing wider than the screen, every control labelled, text contrast of
// at least 4.5:1 (3:1 for large text), and no door code in the document.
func (b *browser) checkPage(pins ...string) {
	b.t.Helper()
	var r struct {
		Overflow  int      `json:"overflow"`
		Unlabeled []string `json:"unlabeled"`
		Contrast  []string `json:"contrast"`
		HTML      string   `json:"html"`
	}
	b.eval(pageChecks, &r)
	if r.Overflow > 0 {
		b.t.Errorf("%s: the page is %d px wider than the window", b.url(), r.Overflow)
	}
	for _, u := range r.Unlabeled {
		b.t.Errorf("%s: control without a label: %s", b.url(), u)
	}
	for _, c := range r.Contrast {
		b.t.Errorf("%s: low contrast: %s", b.url(), c)
	}
	for _, pin := range pins {
		if strings.Contains(r.HTML, pin) {
			b.t.Errorf("%s: the page shows the PIN %s", b.url(), pin)
		}
	}
}

// pageChecks is evaluated in the page; see checkPage.
const pageChecks = `(() => {
  const lum = c => { const v = c.map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const rgba = s => { const m = /rgba?\(([^)]+)\)/.exec(s); return m ? m[1].split(',').map(Number) : null; };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && (c.length < 4 || c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const contrast = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode());) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || el.closest('.vh, noscript, [hidden]')) continue;
    const box = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (box.width === 0 || box.height === 0 || st.visibility !== 'visible') continue;
    const fg = rgba(st.color).slice(0, 3), bg = background(el);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) contrast.push(ratio.toFixed(2) + ' for ' + JSON.stringify(n.textContent.trim().slice(0, 40)) + ' (' + st.color + ' on rgb(' + bg + '))');
  }
  const unlabeled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(el => el.tagName === 'BUTTON'
      ? !el.textContent.trim() && !el.getAttribute('aria-label')
      : !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map(el => el.outerHTML.slice(0, 120));
  return {overflow: Math.max(0, document.documentElement.scrollWidth - window.innerWidth),
    unlabeled, contrast: [...new Set(contrast)].slice(0, 10), html: document.documentElement.outerHTML};
})()`

// TestConsoleInBrowser follows an operator through a day: sign in (a wrong
// token, then the right one), watch a troubled code appear on the open
// triage page, open it, read its evidence, acknowledge it and see it leave
// the list, search, come in through a link from another site, and sign out;
// at desktop and phone widths.
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	db := pgtest.NewURL(t)
	env := newServeEnv(t, db)
	env["CODEWATCH_OPS_TOKEN"] = "alice:" + randomHex(12)
	env["CODEWATCH_SESSION_TTL"] = "90m"
	s := startServer(t, "serve", env)
	console := s.Ops + "/console/"
	// An unusual PIN of 8 digits: no id or time on a page holds it by chance.
	pin := "73051946"
	lockA, lockB := "5c1f0b7e-7f0a-4b9e-a2a1-3d1c2e4f5a6b", "e2d4c6b8-1a3b-4c5d-8e7f-90a1b2c3d4e5"
	sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret}
	// send posts one Seam event, signed with the svix library as Seam does.
	send := func(typ, code, device string, ago time.Duration) {
		t.Helper()
		body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, DeviceID: device,
			OccurredAt: time.Now().Add(-ago), Code: pin})
		if err != nil {
			t.Fatal(err)
		}
		reply, err := sender.Send(context.Background(), seamevent.NewMessageID(), body)
		if err != nil || reply.Status != http.StatusOK {
			t.Fatalf("send %s for %s: %v %d %s", typ, code, err, reply.Status, reply.Body)
		}
	}

	// Earlier in the day: one deletion Seam reported delayed (the lock is
	// offline), one never confirmed, one confirmed.
	delayed, overdue, fine := seamevent.NewID(), seamevent.NewID(), seamevent.NewID()
	send("access_code.set_on_device", delayed, lockA, 26*time.Hour)
	send("access_code.deleted", delayed, lockA, 3*time.Hour+12*time.Minute)
	send("access_code.delay_in_removing_from_device", delayed, lockA, 3*time.Hour+10*time.Minute)
	send("access_code.deleted", overdue, lockB, 47*time.Minute)
	send("access_code.set_on_device", fine, lockA, 5*time.Hour)
	send("access_code.deleted", fine, lockA, 2*time.Hour)
	send("access_code.removed_from_device", fine, lockA, 2*time.Hour-time.Minute)

	t.Run("the console is not on the public listener", func(t *testing.T) {
		for _, path := range []string{"/", "/console/", "/console/signin", "/console/assets/console.css"} {
			resp, err := http.Get(s.Public + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "<html") {
				t.Errorf("public %s: %d %.80s, want a 404 with no page", path, resp.StatusCode, body)
			}
		}
	})

	t.Run("sign in", func(t *testing.T) {
		b := b.in(t)
		b.do("open the console", chromedp.Navigate(s.Ops+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
		if u := b.url(); !strings.Contains(u, "/console/signin") {
			t.Fatalf("opening the console without a session went to %s, want the sign-in page", u)
		}
		b.checkPage()
		b.load("type a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-0123456789"+kb.Enter))
		if msg := b.text("#signin-error"); !strings.Contains(msg, "not one of") {
			t.Errorf("wrong token: message %q", msg)
		}
		b.screenshot("signin-desktop")
		// The keyboard alone: the token field, then Enter.
		b.load("type the token", chromedp.SendKeys(chromedp.CSS("#token"), s.Token+kb.Enter))
		if u := b.url(); u != console {
			t.Errorf("signed in at %s, want %s", u, console)
		}
		if who := b.text(".who"); !strings.Contains(who, "alice") {
			t.Errorf("signed in as %q, want alice (the token's name)", who)
		}
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{console}})
		if err != nil {
			t.Fatal(err)
		}
		var session *network.Cookie
		for _, c := range cookies.Cookies {
			if c.Name == "codewatch_session" {
				session = c
			}
		}
		if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict ||
			math.Abs(session.Expires-float64(time.Now().Add(90*time.Minute).Unix())) > 60 {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, expiring in CODEWATCH_SESSION_TTL (90m)", session)
		}
	})

	troubled := seamevent.NewID()
	t.Run("a troubled code appears without a reload", func(t *testing.T) {
		b := b.in(t)
		for _, id := range []string{delayed, overdue} {
			if b.text(`[id="t-`+id+`"]`) == "" {
				t.Errorf("the triage list lacks %s", id)
			}
		}
		if b.text(`[id="t-`+fine+`"]`) != "" {
			t.Errorf("the triage list shows %s, whose removal is confirmed", fine)
		}
		var before string
		b.eval(`window.__sameDocument = 'yes'; document.getElementById('updated-at').dateTime`, &before)
		send("access_code.set_on_device", troubled, lockB, 4*time.Hour)
		send("access_code.deleted", troubled, lockB, 31*time.Minute)
		send("access_code.failed_to_remove_from_device", troubled, lockB, 0)
		b.waitFor("the new code on the open triage page", `!!document.querySelector('[id="t-`+troubled+`"]')`, 15*time.Second)
		var same string
		var after string
		b.eval(`window.__sameDocument || 'reloaded'`, &same)
		b.eval(`document.getElementById('updated-at').dateTime`, &after)
		if same != "yes" {
			t.Errorf("the page reloaded to show the new code")
		}
		if after == before {
			t.Errorf("'Updated' still says %s", before)
		}
		// Most urgent first: the failure, then the delay, then overdue.
		var order []string
		b.eval(`[...document.querySelectorAll('.code-link')].map(a => a.id.slice(2))`, &order)
		if want := []string{troubled, delayed, overdue}; strings.Join(order, ",") != strings.Join(want, ",") {
			t.Errorf("triage order %v, want %v", order, want)
		}
		card := b.text(`.card:has([id="t-` + troubled + `"])`)
		for _, want := range []string{"Removal failed", lockB, "31 min ago", "Failed to remove code from device.", "Device is offline"} {
			if !strings.Contains(card, want) {
				t.Errorf("the card of %s lacks %q:\n%s", troubled, want, card)
			}
		}
		var title string
		b.eval(`document.querySelector('[id="t-`+troubled+`"]').closest('.card').querySelector('time').title`, &title)
		if !strings.Contains(title, "20") || !strings.Contains(title, ":") {
			t.Errorf("hovering the age shows %q, want the exact time", title)
		}
		b.checkPage(pin)
		b.screenshot("triage-desktop")
	})

	t.Run("the code's page and its evidence", func(t *testing.T) {
		b := b.in(t)
		// The keyboard again: Tab to the code's link, Enter.
		b.eval(`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`, nil)
		found := false
		for i := 0; i < 40 && !found; i++ {
			b.do("tab", chromedp.KeyEvent(kb.Tab))
			var id string
			b.eval(`document.activeElement ? document.activeElement.id : ''`, &id)
			found = id == "t-"+troubled
		}
		if !found {
			t.Fatalf("Tab never reached the link of %s", troubled)
		}
		b.load("open the code", chromedp.KeyEvent(kb.Enter))
		if u := b.url(); !strings.HasSuffix(u, "/console/codes/"+troubled) {
			t.Fatalf("Enter on the link opened %s", u)
		}
		summary := b.text("#summary")
		for _, want := range []string{"Failed", "Removal failed", lockB, "Failed to remove code from device.", "Next step"} {
			if !strings.Contains(summary, want) {
				t.Errorf("the code's summary lacks %q:\n%s", want, summary)
			}
		}
		var labels []string
		b.eval(`[...document.querySelectorAll('.ev-label')].map(e => e.textContent)`, &labels)
		if want := "Set on the lock,Deleted in Seam,Seam failed to remove it"; strings.Join(labels, ",") != want {
			t.Errorf("timeline %v, want %s", labels, want)
		}
		if tl := b.text("#timeline"); !strings.Contains(tl, "via webhook") {
			t.Errorf("the timeline does not say where events came from:\n%s", tl)
		}
		b.checkPage(pin)
		b.screenshot("code-desktop")
		// The raw JSON, one click away, with the PIN masked.
		b.do("open the raw JSON", chromedp.Click(chromedp.CSS("#timeline details summary")),
			chromedp.WaitVisible(chromedp.CSS("#timeline details[open] pre")))
		raw := b.text("#timeline details[open] pre")
		if !strings.Contains(raw, `"event_type": "access_code.set_on_device"`) || !strings.Contains(raw, `"code": "••46"`) {
			t.Errorf("raw JSON of the first event:\n%s", raw)
		}
		if alerts := b.text("#alerts"); !strings.Contains(alerts, "Needs troubleshooting") || !strings.Contains(alerts, "log") {
			t.Errorf("the code's alerts:\n%s", alerts)
		}
		b.checkPage(pin)
		b.screenshot("evidence-desktop")
	})

	t.Run("acknowledge and the code leaves triage", func(t *testing.T) {
		b := b.in(t)
		b.do("write a note", chromedp.SendKeys(chromedp.CSS("#note"), "Called the front desk: the lock is back online"))
		b.load("acknowledge", chromedp.Click(chromedp.CSS("form.ack button")))
		if msg := b.text(".flash"); !strings.Contains(msg, "Acknowledged "+troubled) {
			t.Errorf("after acknowledging: message %q", msg)
		}
		if b.text(`[id="t-`+troubled+`"]`) != "" {
			t.Errorf("the acknowledged code is still on the triage list")
		}
		code := s.code(troubled)
		if code.NeedsTroubleshooting || code.AcknowledgedBy == nil || *code.AcknowledgedBy != "alice" ||
			code.AcknowledgementNote == nil || *code.AcknowledgementNote != "Called the front desk: the lock is back online" {
			t.Errorf("after acknowledging in the console the API shows %+v", code)
		}
		// Acknowledged elsewhere (the API) while the page is open: it
		// leaves the list by itself.
		b.eval(`window.__sameDocument = 'yes'`, nil)
		if st := s.api(http.MethodPost, "/v1/access_codes/"+overdue+"/acknowledge", s.Token, map[string]string{"note": "on site"}, nil); st != http.StatusOK {
			t.Fatalf("acknowledge through the API: %d", st)
		}
		b.eval(`document.dispatchEvent(new Event('visibilitychange'))`, nil)
		b.waitFor("the code to leave the open page", `!document.querySelector('[id="t-`+overdue+`"]')`, 15*time.Second)
		var same string
		b.eval(`window.__sameDocument || 'reloaded'`, &same)
		if same != "yes" {
			t.Errorf("the page reloaded")
		}
	})

	t.Run("search", func(t *testing.T) {
		b := b.in(t)
		search := func(q string) {
			b.t.Helper()
			b.eval(`document.getElementById('q').value = ''`, nil)
			b.load("search "+q, chromedp.SendKeys(chromedp.CSS("#q"), q+kb.Enter))
		}
		search(delayed)
		if u := b.url(); !strings.HasSuffix(u, "/console/codes/"+delayed) {
			t.Errorf("searching an access code id opened %s", u)
		}
		search(strings.ToUpper(lockB))
		if u := b.url(); !strings.HasSuffix(u, "/console/locks/"+lockB) {
			t.Errorf("searching a device id opened %s", u)
		}
		var listed []string
		b.eval(`[...document.querySelectorAll('table.codes a.id[href*="/codes/"]')].map(a => a.textContent)`, &listed)
		if strings.Join(listed, ",") != troubled+","+overdue && strings.Join(listed, ",") != overdue+","+troubled {
			t.Errorf("the codes on lock %s: %v, want %s and %s", lockB, listed, troubled, overdue)
		}
		search("680d7c60-0a92-4e78-85bd-cb45155576b9") // seamevent's workspace
		if u := b.url(); !strings.Contains(u, "workspace_id=680d7c60") {
			t.Errorf("searching a workspace id opened %s", u)
		}
		search("no-such-id")
		if h := b.text("h1"); h != "Nothing found" {
			t.Errorf("searching an unknown id: %q", h)
		}

		// Names people use (issue 22), as the names jobs keep them (set
		// here directly: this service has no Seam API key).
		conn := dbConn(t, db)
		if _, err := conn.Exec(context.Background(), `UPDATE access_codes SET access_code_name = 'Guest: Smith, 5–8 Dec',
			names_checked_at = now() WHERE access_code_id = $1`, delayed); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(context.Background(), `UPDATE devices SET device_name = 'Front door', location_name = '12 Elm St',
			time_zone = 'America/New_York', names_checked_at = now() WHERE device_id = $1`, lockA); err != nil {
			t.Fatal(err)
		}
		search("smith")
		var names []string
		b.eval(`[...document.querySelectorAll('table.codes .name')].map(e => e.textContent)`, &names)
		if got := strings.Join(names, "|"); got != "Guest: Smith, 5–8 Dec|Front door at 12 Elm St" {
			t.Errorf("searching a guest's name lists %q", got)
		}
		b.checkPage(pin)
		search("ELM ST")
		var locks []string
		b.eval(`[...document.querySelectorAll('.search-locks a.id')].map(a => a.textContent)`, &locks)
		if strings.Join(locks, ",") != lockA {
			t.Errorf("searching a street lists the locks %v, want %s", locks, lockA)
		}
		// The code's page names it first; its deletion record is a page of
		// its own, printable.
		b.load("open the named code", chromedp.Navigate(s.Ops+"/console/codes/"+delayed))
		if n := b.text("h1 .name"); n != "Guest: Smith, 5–8 Dec" {
			t.Errorf("the code's heading names %q", n)
		}
		b.load("open its deletion record", chromedp.Click("#deletion-record-link"))
		if h := b.text("h1"); !strings.Contains(h, "Deletion record") || !strings.Contains(h, delayed) {
			t.Errorf("deletion record heading %q", h)
		}
		b.checkPage(pin)
		b.screenshot("deletion-record")
	})

	t.Run("alerts and quarantine", func(t *testing.T) {
		b := b.in(t)
		b.do("alerts", chromedp.Navigate(s.Ops+"/console/alerts"), chromedp.WaitVisible(chromedp.CSS("#deliveries")))
		if d := b.text("#deliveries"); !strings.Contains(d, troubled) || !strings.Contains(d, "Delivered") {
			t.Errorf("the outbox page:\n%s", d)
		}
		b.checkPage(pin)
		b.screenshot("alerts-desktop")
		b.do("quarantine", chromedp.Navigate(s.Ops+"/console/quarantine"), chromedp.WaitVisible(chromedp.CSS("h1")))
		b.checkPage(pin)
	})

	t.Run("River's job UI lists the delivery of the flagged code's alert", func(t *testing.T) {
		b := b.in(t)
		b.do("open the console", chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS("h1")))
		b.load("the Jobs link", chromedp.Click(chromedp.CSS(`nav a[href="/console/jobs/"]`)))
		b.do("completed jobs", chromedp.Navigate(s.Ops+"/console/jobs/jobs?state=completed"))
		b.waitFor("the alert delivery job", `document.body.innerText.includes('deliver_alert')`, 20*time.Second)
		var html string
		b.eval(`document.documentElement.outerHTML`, &html)
		if strings.Contains(html, pin) {
			t.Errorf("River's job UI shows the PIN")
		}
		b.screenshot("jobs-desktop")
	})

	t.Run("phone width", func(t *testing.T) {
		b := b.in(t)
		b.do("emulate a phone", chromedp.Emulate(device.IPhone13))
		for _, p := range []struct{ path, shot string }{
			{"/console/", "triage-phone"},
			{"/console/codes/" + delayed, "code-phone"},
			{"/console/codes?device_id=" + lockB, ""},
			{"/console/alerts", ""},
		} {
			b.do("open "+p.path, chromedp.Navigate(s.Ops+p.path), chromedp.WaitVisible(chromedp.CSS("h1")))
			b.checkPage(pin)
			if p.shot != "" {
				b.screenshot(p.shot)
			}
		}
		b.do("back to the desktop", chromedp.EmulateReset())
	})

	t.Run("a link from another site opens the page", func(t *testing.T) {
		b := b.in(t)
		// Slack, a ticket or an alert link: the browser keeps the
		// SameSite=Strict cookie back on the first request.
		target := s.Ops + "/console/codes/" + delayed
		elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><a id="go" href="%s">the code</a>`, target)
		}))
		defer elsewhere.Close()
		other := strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1) // another site than 127.0.0.1
		b.do("follow the link", chromedp.Navigate(other), chromedp.Click(chromedp.CSS("#go")))
		b.waitFor("the code's page", `location.pathname === '/console/codes/`+delayed+`' && !!document.getElementById('timeline')`, 15*time.Second)
	})

	t.Run("sign out", func(t *testing.T) {
		b := b.in(t)
		b.do("open the console", chromedp.Navigate(console))
		b.load("sign out", chromedp.Click(chromedp.CSS(".signout button")))
		if msg := b.text(".flash"); !strings.Contains(msg, "signed out") {
			t.Errorf("after signing out: %q", msg)
		}
		b.do("open the console again", chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS("#token")))
		if u := b.url(); !strings.Contains(u, "/console/signin") {
			t.Errorf("after signing out the console opened %s", u)
		}
	})
}
