package main

// River's job UI under /console/jobs/ (issue 24): behind the console's
// session, its own Content-Security-Policy, its changes only from the
// console's own origin, and the jobs' arguments shown (ids, never a PIN).

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

func TestConsoleJobsPage(t *testing.T) {
	t.Parallel()
	sink := newRawSink(t)
	env := newServeEnv(t, pgtest.NewURL(t))
	env["CODEWATCH_ALERT_WEBHOOK_URL"] = sink.srv.URL + "/alerts"
	env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = newWebhookSecret()
	s := startServer(t, "serve", env)
	sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret}
	code := seamevent.NewID()
	now := time.Now().Add(-time.Minute)
	for i, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove} {
		rep, err := sender.Send(context.Background(), seamevent.NewMessageID(), proofEvent(t, typ, code, now.Add(time.Duration(i)*time.Second), nil))
		if err != nil || rep.Status != http.StatusOK {
			t.Fatalf("send %s: %v %d %s", typ, err, rep.Status, rep.Body)
		}
	}
	waitFor(t, 20*time.Second, "the alert at the webhook sink", func() bool { return len(sink.bodies()) > 0 })

	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	anon := &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirect}
	do := func(c *http.Client, method, path string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, s.Ops+path, strings.NewReader(`{"job_ids":["1"]}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}

	// Anonymous: sent to sign in, never served.
	if resp, b := do(anon, http.MethodGet, "/console/jobs/", nil); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/console/signin?next="+url.QueryEscape("/console/jobs/") {
		t.Errorf("anonymous page: %d %s %.200s", resp.StatusCode, resp.Header.Get("Location"), b)
	}
	if resp, _ := do(anon, http.MethodGet, "/console/jobs", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("anonymous /console/jobs: %d", resp.StatusCode)
	}
	for _, path := range []string{"/console/jobs/api/jobs?state=completed", "/console/jobs/api/queues"} {
		if resp, b := do(anon, http.MethodGet, path, nil); resp.StatusCode != http.StatusUnauthorized ||
			!bytes.Contains(b, []byte(`"type":"unauthorized"`)) || bytes.Contains(b, []byte("deliver_alert")) {
			t.Errorf("anonymous %s: %d %.200s", path, resp.StatusCode, b)
		}
	}
	if resp, b := do(anon, http.MethodPost, "/console/jobs/api/jobs/retry", map[string]string{"Origin": s.Ops}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous retry: %d %.200s", resp.StatusCode, b)
	}
	// The ops token alone does not open it: it is the console's page.
	if resp, _ := do(anon, http.MethodGet, "/console/jobs/api/jobs?state=completed", map[string]string{"Authorization": "Bearer " + s.Token}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("with the ops token but no session: %d", resp.StatusCode)
	}

	// Signed in.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: noRedirect}
	_, signin := do(c, http.MethodGet, "/console/signin", nil)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(signin)
	if m == nil {
		t.Fatal("no CSRF field on the sign-in page")
	}
	resp, err := c.PostForm(s.Ops+"/console/signin", url.Values{"csrf": {string(m[1])}, "token": {s.Token}, "next": {"/console/jobs/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/jobs/" {
		t.Fatalf("sign in: %d to %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := do(c, http.MethodGet, "/console/jobs/", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(page, []byte("<script")) {
		t.Fatalf("the jobs page: %d %.300s", resp.StatusCode, page)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the jobs page's Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("the jobs page's Content-Security-Policy allows inline code: %q", csp)
	}
	// Its own scripts are served (same origin), behind the session too.
	src := regexp.MustCompile(`src="(/console/jobs/[^"]+\.js)"`).FindSubmatch(page)
	if src == nil {
		t.Errorf("the jobs page loads no script of its own from /console/jobs/: %.500s", page)
	} else {
		if resp, _ := do(c, http.MethodGet, string(src[1]), nil); resp.StatusCode != http.StatusOK {
			t.Errorf("its script %s: %d", src[1], resp.StatusCode)
		}
	}
	// The alert's delivery job, with its arguments: ids, never the PIN.
	// (River marks a job completed a moment after it ran.)
	var list []byte
	waitFor(t, 15*time.Second, "the delivery job listed as completed", func() bool {
		resp, list = do(c, http.MethodGet, "/console/jobs/api/jobs?state=completed&limit=100", nil)
		return resp.StatusCode == http.StatusOK && bytes.Contains(list, []byte(`"deliver_alert"`))
	})
	if !bytes.Contains(list, []byte(`alert_id`)) {
		t.Errorf("completed jobs show no arguments: %.500s", list)
	}
	if leaks := pinLeaks(list); len(leaks) > 0 {
		t.Errorf("the jobs' arguments show the PIN %v", leaks)
	}
	// The menu leads there.
	if _, home := do(c, http.MethodGet, "/console/", nil); !bytes.Contains(home, []byte(`href="/console/jobs/"`)) {
		t.Errorf("the console's menu has no Jobs link")
	}
	// Changes only from the console's own pages: no Origin, or another
	// one, or a cross-site fetch, is refused before River sees it.
	for name, h := range map[string]map[string]string{
		"no Origin":         nil,
		"another Origin":    {"Origin": "https://evil.example"},
		"a cross-site call": {"Origin": s.Ops, "Sec-Fetch-Site": "cross-site"},
	} {
		if resp, b := do(c, http.MethodPost, "/console/jobs/api/jobs/retry", h); resp.StatusCode != http.StatusForbidden ||
			!bytes.Contains(b, []byte(`"type":"forbidden"`)) {
			t.Errorf("retry with %s: %d %.200s", name, resp.StatusCode, b)
		}
	}
	if resp, b := do(c, http.MethodGet, "/console/jobs/api/jobs?state=completed", map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site read of the API: %d %.200s", resp.StatusCode, b)
	}
	// From the console's own origin River answers (the job id is not one
	// of ours: whatever River says, it is River saying it).
	if resp, b := do(c, http.MethodPost, "/console/jobs/api/jobs/retry", map[string]string{"Origin": s.Ops}); resp.StatusCode == http.StatusForbidden ||
		bytes.Contains(b, []byte("River's buttons work from the console's own pages only")) {
		t.Errorf("retry from the console's own origin: %d %.200s", resp.StatusCode, b)
	}
}
