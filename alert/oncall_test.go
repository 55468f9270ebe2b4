package alert_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// onCallRequest is one request an on-call service received.
type onCallRequest struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   map[string]any
	Raw                                    []byte
	At                                     time.Time
}

// onCallServer stands in for PagerDuty, Opsgenie or a Teams workflow: it
// checks each request with check (the documented shape and authentication;
// a non-empty answer is a 400 with it, recorded as a rejection), then
// answers what answer says for the n-th request (default 202).
type onCallServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	check    func(r onCallRequest) string
	answer   func(n int) int
	got      []onCallRequest
	rejected []string
}

func newOnCallServer(t *testing.T, check func(r onCallRequest) string) *onCallServer {
	t.Helper()
	s := &onCallServer{t: t, check: check}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		r := onCallRequest{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery,
			Auth: req.Header.Get("Authorization"), ContentType: req.Header.Get("Content-Type"), At: time.Now(), Raw: raw}
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			r.Body = nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if why := s.check(r); why != "" {
			s.rejected = append(s.rejected, why)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"status":"invalid event","message":"`+why+`"}`)
			return
		}
		s.got = append(s.got, r)
		status := http.StatusAccepted
		if s.answer != nil {
			status = s.answer(len(s.got))
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"status":"success","message":"Event processed","result":"Request will be processed"}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *onCallServer) requests() []onCallRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]onCallRequest(nil), s.got...)
}

func (s *onCallServer) setAnswer(f func(n int) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

func (s *onCallServer) noRejections() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rejected) > 0 {
		s.t.Fatalf("the service rejected requests: %v", s.rejected)
	}
}

// waitRequests waits until the service has accepted n requests.
func (s *onCallServer) waitRequests(n int) []onCallRequest {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(s.requests()) < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("the service got %d requests, want %d: %+v (rejected %v)", len(s.requests()), n, s.requests(), s.rejected)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s.requests()
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

const routingKey = "R0UT1NGK3Y0123456789abcdefABCDEF" // 32 characters, opaque

// checkPagerDuty is the Events API v2's contract (/work/shared/oncall.md).
func checkPagerDuty(r onCallRequest) string {
	switch {
	case r.Method != http.MethodPost || r.Path != "/v2/enqueue":
		return "not POST /v2/enqueue: " + r.Method + " " + r.Path
	case r.ContentType != "application/json" || r.Body == nil:
		return "not a JSON body"
	case r.Auth != "":
		return "an Authorization header: the routing key goes in the body"
	case r.Body["routing_key"] != routingKey:
		return "wrong routing_key"
	case str(r.Body, "dedup_key") == "" || len(str(r.Body, "dedup_key")) > 255:
		return "dedup_key missing or too long"
	}
	switch r.Body["event_action"] {
	case "resolve":
		if r.Body["payload"] != nil {
			return "a resolve with a payload"
		}
	case "trigger":
		p, _ := r.Body["payload"].(map[string]any)
		sev := str(p, "severity")
		switch {
		case p == nil || str(p, "summary") == "" || len(str(p, "summary")) > 1024:
			return "trigger without a summary of at most 1024 characters"
		case str(p, "source") == "":
			return "trigger without a source"
		case sev != "critical" && sev != "error" && sev != "warning" && sev != "info":
			return "severity " + sev
		}
		if _, err := time.Parse(time.RFC3339, str(p, "timestamp")); err != nil {
			return "timestamp not RFC 3339"
		}
	default:
		return fmt.Sprintf("event_action %v", r.Body["event_action"])
	}
	return ""
}

func pagerDuty(t *testing.T) (*onCallServer, alert.PagerDutySink) {
	s := newOnCallServer(t, checkPagerDuty)
	return s, alert.PagerDutySink{RoutingKey: routingKey, URL: s.srv.URL + "/v2/enqueue",
		PublicURL: "https://codewatch.example.com", Client: &http.Client{Timeout: 5 * time.Second}}
}

// A code's trouble triggers one incident keyed by the trouble, naming the
// code and its lock and linking to the code's console page; its
// acknowledgement resolves the same incident.
func TestPagerDutyTriggerThenResolve(t *testing.T) {
	o := newOutbox(t, "pagerduty")
	pd, sink := pagerDuty(t)
	o.work(o.pool, alert.WorkerConfig{}, sink)

	code, alertID := o.fail()
	o.waitSettled(1)
	got := pd.waitRequests(1)
	trig := got[0].Body
	troubleID := lifecycle.TroubleID(code, "")
	var row struct{ key string }
	if err := o.pool.QueryRow(o.ctx, `SELECT trouble_key FROM access_codes WHERE access_code_id = $1`, code).Scan(&row.key); err != nil {
		t.Fatal(err)
	}
	troubleID = lifecycle.TroubleID(code, row.key)
	p, _ := trig["payload"].(map[string]any)
	details, _ := p["custom_details"].(map[string]any)
	links, _ := trig["links"].([]any)
	switch {
	case trig["event_action"] != "trigger" || trig["dedup_key"] != troubleID:
		t.Errorf("trigger %v", trig)
	case !strings.Contains(str(p, "summary"), code) || !strings.Contains(str(p, "summary"), testDevice):
		t.Errorf("summary does not name the code and the lock: %q", str(p, "summary"))
	case str(p, "severity") != "warning":
		t.Errorf("a failure's severity %q, want warning", str(p, "severity"))
	case details["access_code_id"] != code || details["troubleshooting_reason"] != lifecycle.ReasonFailed ||
		details["deletion_state"] != "failed" || !strings.Contains(fmt.Sprint(details["seam_says"]), "Failed to remove code from device."):
		t.Errorf("custom_details %v", details)
	case len(links) != 1 || str(links[0].(map[string]any), "href") != "https://codewatch.example.com/console/codes/"+code:
		t.Errorf("links %v", links)
	}
	if d := o.delivery(alertID, "pagerduty"); d.Status != "sent" || d.Attempts != 1 {
		t.Errorf("delivery %+v", d)
	}

	if _, _, err := o.store.Acknowledge(o.ctx, code, "ops@example.com", "checked", ""); err != nil {
		t.Fatal(err)
	}
	o.waitSettled(2)
	got = pd.waitRequests(2)
	if res := got[1].Body; res["event_action"] != "resolve" || res["dedup_key"] != troubleID {
		t.Errorf("resolution %v, want resolve of %s", res, troubleID)
	}
	pd.noRejections()
}

// unlockAfterDeletion stores the lock's unlock with the deleted code: the
// critical evidence that replaces a code's failure.
func unlockAfterDeletion(t *testing.T, o *outbox, code string) {
	t.Helper()
	if err := ingest(o.store, lifecycle.TypeLockUnlocked, code, o.clock.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// When a code's trouble changes (a failure becomes critical evidence), the
// failure's incident is resolved before the critical one is triggered: no
// incident is left open.
func TestPagerDutyResolvesTheReplacedTroubleFirst(t *testing.T) {
	o := newOutbox(t, "pagerduty")
	pd, sink := pagerDuty(t)
	o.work(o.pool, alert.WorkerConfig{}, sink)

	code, _ := o.fail()
	o.waitSettled(1)
	first := pd.waitRequests(1)[0].Body["dedup_key"]
	unlockAfterDeletion(t, o, code)
	o.waitSettled(2)
	got := pd.waitRequests(3)
	if got[1].Body["event_action"] != "resolve" || got[1].Body["dedup_key"] != first {
		t.Errorf("second request %v, want the resolve of %v", got[1].Body, first)
	}
	crit := got[2].Body
	p, _ := crit["payload"].(map[string]any)
	if crit["event_action"] != "trigger" || crit["dedup_key"] == first || str(p, "severity") != "critical" ||
		!strings.Contains(str(p, "summary"), "CRITICAL") {
		t.Errorf("third request %v, want the critical trigger", crit)
	}
	pd.noRejections()
}

// 429 (no Retry-After, as PagerDuty sends it) and 5xx are retried with
// backoff until accepted; 400 is given up at once, and logged.
func TestPagerDutyErrorAnswers(t *testing.T) {
	o := newOutbox(t, "pagerduty")
	pd, sink := pagerDuty(t)
	pd.setAnswer(func(n int) int {
		switch n {
		case 1:
			return http.StatusTooManyRequests
		case 2:
			return http.StatusBadGateway
		}
		return http.StatusAccepted
	})
	var logs syncBuffer
	base := time.Second
	o.work(o.pool, alert.WorkerConfig{BackoffBase: base, BackoffMax: 2 * time.Second, Logger: newJSONLogger(&logs)}, sink)
	_, alertID := o.fail()
	o.waitSettled(1)
	got := pd.waitRequests(3)
	for i := 1; i < 3; i++ {
		// At least 0.8 base (±20% jitter on base, then twice base), counted
		// from the attempt's start: the server sees the earlier request up to
		// a scheduler's delay later on a loaded machine, hence the slack.
		if gap := got[i].At.Sub(got[i-1].At); gap < base/2 {
			t.Errorf("retry %d came %v after the previous attempt: no backoff", i, gap)
		}
	}
	if d := o.delivery(alertID, "pagerduty"); d.Status != "sent" || d.Attempts != 3 {
		t.Errorf("delivery %+v, want sent after 3 attempts", d)
	}

	// An event PagerDuty calls invalid: given up at once.
	pd.setAnswer(func(int) int { return http.StatusBadRequest })
	_, bad := o.fail()
	o.waitSettled(2)
	d := o.delivery(bad, "pagerduty")
	if d.Status != "given_up" || d.Attempts != 1 || d.LastError == nil || !strings.Contains(*d.LastError, "400") {
		t.Errorf("delivery answered 400: %+v, want given up after one attempt", d)
	}
	if !strings.Contains(logs.String(), "alert delivery given up") || !strings.Contains(logs.String(), "answered 400") {
		t.Errorf("the give-up is not logged with PagerDuty's answer:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), routingKey) {
		t.Error("the routing key is in the log")
	}
}

const genieKey = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"

// checkOpsgenie is the Alert API's contract, under a path prefix (Jira
// Service Management's operations API).
func checkOpsgenie(prefix string) func(r onCallRequest) string {
	return func(r onCallRequest) string {
		switch {
		case r.Method != http.MethodPost:
			return "not a POST"
		case r.Auth != "GenieKey "+genieKey:
			return "Authorization " + r.Auth
		case r.ContentType != "application/json" || r.Body == nil:
			return "not a JSON body"
		case r.Path == prefix+"/v2/alerts":
			msg, alias := str(r.Body, "message"), str(r.Body, "alias")
			details, _ := r.Body["details"].(map[string]any)
			switch {
			case msg == "" || len([]rune(msg)) > 130:
				return "message missing or over 130 characters"
			case alias == "" || len(alias) > 512:
				return "alias missing or too long"
			case r.Body["priority"] != "P1" && r.Body["priority"] != "P3":
				return fmt.Sprintf("priority %v", r.Body["priority"])
			case r.Body["source"] != "codewatch" || details["access_code_id"] == nil:
				return "source or details.access_code_id missing"
			case len(str(r.Body, "description")) > 15000:
				return "description over 15000"
			}
			for k, v := range details {
				if _, ok := v.(string); !ok {
					return "details." + k + " is not a string"
				}
			}
		case strings.HasPrefix(r.Path, prefix+"/v2/alerts/") && strings.HasSuffix(r.Path, "/close"):
			if r.Query != "identifierType=alias" {
				return "close without identifierType=alias: " + r.Query
			}
		default:
			return "unknown path " + r.Path
		}
		return ""
	}
}

// Trouble creates an Opsgenie alert whose alias is the trouble; a critical
// one is P1 and closes the failure's alert first; the acknowledgement
// closes it by alias. The base URL's path is kept.
func TestOpsgenieCreateThenClose(t *testing.T) {
	o := newOutbox(t, "opsgenie")
	const prefix = "/jsm/ops/integration"
	og := newOnCallServer(t, checkOpsgenie(prefix))
	o.work(o.pool, alert.WorkerConfig{}, alert.OpsgenieSink{APIKey: genieKey, URL: og.srv.URL + prefix + "/",
		PublicURL: "https://codewatch.example.com", Client: &http.Client{Timeout: 5 * time.Second}})

	code, _ := o.fail()
	o.waitSettled(1)
	created := og.waitRequests(1)[0].Body
	alias := str(created, "alias")
	if !strings.HasPrefix(alias, "trouble_") || created["priority"] != "P3" || !strings.Contains(str(created, "message"), code) {
		t.Errorf("create %v", created)
	}
	unlockAfterDeletion(t, o, code)
	o.waitSettled(2)
	got := og.waitRequests(3)
	if got[1].Path != prefix+"/v2/alerts/"+alias+"/close" {
		t.Errorf("second request %s, want the close of %s", got[1].Path, alias)
	}
	crit := got[2].Body
	if crit["priority"] != "P1" || str(crit, "alias") == alias || !strings.HasPrefix(str(crit, "message"), "CRITICAL") {
		t.Errorf("critical create %v", crit)
	}
	if _, _, err := o.store.Acknowledge(o.ctx, code, "ops@example.com", "removed at the lock", ""); err != nil {
		t.Fatal(err)
	}
	o.waitSettled(3)
	got = og.waitRequests(4)
	if got[3].Path != prefix+"/v2/alerts/"+str(crit, "alias")+"/close" || got[3].Body["source"] != "codewatch" {
		t.Errorf("resolution %s %v", got[3].Path, got[3].Body)
	}
	og.noRejections()
}

// Opsgenie's 429 is retried; a 422 (not processable) is given up at once.
func TestOpsgenieErrorAnswers(t *testing.T) {
	o := newOutbox(t, "opsgenie")
	og := newOnCallServer(t, checkOpsgenie(""))
	og.setAnswer(func(n int) int {
		if n == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusAccepted
	})
	o.work(o.pool, alert.WorkerConfig{}, alert.OpsgenieSink{APIKey: genieKey, URL: og.srv.URL, Client: &http.Client{Timeout: 5 * time.Second}})
	_, id := o.fail()
	o.waitSettled(1)
	if d := o.delivery(id, "opsgenie"); d.Status != "sent" || d.Attempts != 2 {
		t.Errorf("delivery %+v, want sent on the second attempt", d)
	}
	og.setAnswer(func(int) int { return http.StatusUnprocessableEntity })
	_, id = o.fail()
	o.waitSettled(2)
	if d := o.delivery(id, "opsgenie"); d.Status != "given_up" || d.Attempts != 1 {
		t.Errorf("delivery answered 422: %+v, want given up at once", d)
	}
}

// checkTeams is a Workflows webhook's contract: a message with one
// Adaptive Card of version 1.4 or lower.
func checkTeams(r onCallRequest) string {
	atts, _ := r.Body["attachments"].([]any)
	if r.Method != http.MethodPost || r.Body["type"] != "message" || len(atts) != 1 {
		return "not a message with one attachment"
	}
	att, _ := atts[0].(map[string]any)
	card, _ := att["content"].(map[string]any)
	switch {
	case att["contentType"] != "application/vnd.microsoft.card.adaptive":
		return "contentType " + fmt.Sprint(att["contentType"])
	case card["type"] != "AdaptiveCard" || card["$schema"] != "http://adaptivecards.io/schemas/adaptive-card.json":
		return "not an AdaptiveCard"
	case card["version"] != "1.4" && card["version"] != "1.3" && card["version"] != "1.2":
		return "card version " + fmt.Sprint(card["version"])
	}
	return ""
}

// cardText is every text of a card, and its facts, in one string.
func cardText(body map[string]any) string {
	b, _ := json.Marshal(body)
	return string(b)
}

// A Teams card names the code among its facts, shows critical trouble in
// the attention colour and links to the code's console page.
func TestTeamsCards(t *testing.T) {
	o := newOutbox(t, "teams")
	teams := newOnCallServer(t, checkTeams)
	// A Workflows URL: any host, a signature in the query.
	url := teams.srv.URL + "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s3cr3t"
	o.work(o.pool, alert.WorkerConfig{}, alert.TeamsSink{URL: url, PublicURL: "https://codewatch.example.com",
		Client: &http.Client{Timeout: 5 * time.Second}})
	code, _ := o.fail()
	o.waitSettled(1)
	unlockAfterDeletion(t, o, code)
	o.waitSettled(2)
	got := teams.waitRequests(2)
	card := func(i int) map[string]any {
		att := got[i].Body["attachments"].([]any)[0].(map[string]any)
		return att["content"].(map[string]any)
	}
	warn, crit := card(0), card(1)
	if s := cardText(warn); !strings.Contains(s, `"title":"Access code","value":"`+code+`"`) || strings.Contains(s, "Attention") {
		t.Errorf("warning card: %s", s)
	}
	if s := cardText(crit); !strings.Contains(s, `"color":"Attention"`) || !strings.Contains(s, "CRITICAL") {
		t.Errorf("critical card: %s", s)
	}
	actions, _ := crit["actions"].([]any)
	if len(actions) != 1 || str(actions[0].(map[string]any), "title") != "Open in codewatch" ||
		str(actions[0].(map[string]any), "url") != "https://codewatch.example.com/console/codes/"+code {
		t.Errorf("actions %v", actions)
	}
	teams.noRejections()
}

// Outside text a sink sends is cleaned: a NUL or invalid UTF-8 (in an id,
// an acknowledgement's note, a next step) never reaches an on-call service.
func TestOnCallSinksCleanOutsideText(t *testing.T) {
	bad := "lock said \x00 and \xff"
	reason := lifecycle.ReasonFailed
	for _, typ := range []string{lifecycle.AlertTrouble, lifecycle.AlertResolved} {
		a := &lifecycle.AlertPayload{Type: typ, AlertID: seamevent.NewID(), AccessCodeID: "c\x00ode",
			DeviceID: "lock\xfe", TroubleID: "trouble_x", Severity: lifecycle.SeverityWarning,
			TroubleshootingReason: &reason, NextStep: bad, Note: bad, AcknowledgedBy: bad, Resolution: "acknowledged",
			TroubleshootingDetails: json.RawMessage(`{"access_code_errors":[{"message":"Failed.","error_code":"x"}]}`)}
		for name, send := range map[string]func(*onCallServer) error{
			"pagerduty": func(s *onCallServer) error {
				return alert.PagerDutySink{RoutingKey: routingKey, URL: s.srv.URL + "/v2/enqueue"}.Deliver(t.Context(), a, nil)
			},
			"opsgenie": func(s *onCallServer) error {
				return alert.OpsgenieSink{APIKey: genieKey, URL: s.srv.URL}.Deliver(t.Context(), a, nil)
			},
			"teams": func(s *onCallServer) error { return alert.TeamsSink{URL: s.srv.URL}.Deliver(t.Context(), a, nil) },
		} {
			s := newOnCallServer(t, func(onCallRequest) string { return "" })
			if err := send(s); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range s.requests() {
				if strings.Contains(string(r.Raw), `\u0000`) || !textOK(string(r.Raw)) {
					t.Errorf("%s %s sent %q", name, typ, r.Raw)
				}
			}
		}
	}
}
