package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/seamevent"
)

// misbehavingSeam plays Seam's API the way things in front of it misbehave
// (a proxy's HTML page, a gateway's JSON, a redirect, a 5xx, a timeout...),
// per access code id, with one real Seam 404 as the control. Seam's fake
// cannot misbehave like this, so a small local server plays Seam here.
type misbehavingSeam struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int // route + " " + access_code_id
}

// The codes, named for how Seam's stand-in answers access_codes/get for
// them, and what codewatch must make of it.
var misbehaviours = []string{"html404", "gateway404", "noshape404", "othertype404", "redirect", "noaccesscode",
	"anothercode", "htmlok", "fivexx", "timeout"}

func newMisbehavingSeam(t *testing.T) *misbehavingSeam {
	m := &misbehavingSeam{calls: map[string]int{}}
	seamErr := func(w http.ResponseWriter, status int, typ string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"type":%q,"message":"Could not find an access_code with device_id or access_code_id"},"ok":false}`, typ)
	}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			AccessCodeID string `json:"access_code_id"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		route := strings.TrimPrefix(r.URL.Path, "/")
		m.mu.Lock()
		m.calls[route+" "+body.AccessCodeID]++
		m.mu.Unlock()
		w.Header().Set("seam-request-id", "req-"+route+"-"+body.AccessCodeID)
		switch route {
		case "workspaces/get":
			fmt.Fprint(w, `{"workspace":{"workspace_id":"ws_mine","name":"Mine","is_sandbox":true},"ok":true}`)
			return
		case "access_codes/unmanaged/list":
			fmt.Fprint(w, `{"access_codes":[],"ok":true}`)
			return
		case "elsewhere":
			// Where the redirect points: Seam's own 404. Following the
			// redirect would take it as Seam's word.
			seamErr(w, http.StatusNotFound, "access_code_not_found")
			return
		case "access_codes/get", "access_codes/delete":
		default:
			http.NotFound(w, r)
			return
		}
		switch body.AccessCodeID {
		case "control":
			seamErr(w, http.StatusNotFound, "access_code_not_found")
		case "html404", "delete_html404":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>")
		case "gateway404":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found"}`)
		case "noshape404":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"type":"access_code_not_found","message":"Not Found"}}`)
		case "othertype404":
			seamErr(w, http.StatusNotFound, "device_not_found")
		case "redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "noaccesscode":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ok":true}`)
		case "anothercode":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_code":{"access_code_id":"someone_else","device_id":"dev","status":"set","errors":[],"warnings":[]},"ok":true}`)
		case "htmlok":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html><body>Please sign in to the corporate proxy</body></html>")
		case "fivexx":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "upstream connect error")
		case "timeout":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			// A code of another workspace: Seam would answer 404 to this
			// key; codewatch must not even ask.
			seamErr(w, http.StatusNotFound, "access_code_not_found")
		}
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *misbehavingSeam) called(route, code string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[route+" "+code]
}

// Issue 19: a removal is confirmed only by Seam's own word. Against a
// stand-in for Seam that misbehaves in every way point 1 lists, with the
// real binary: no lookup confirms anything except the control (Seam's own
// 404), POST .../reconcile answers 502 seam_api_error at once saying what
// came back, the failed lookup shows under seam, and the job retries; a
// code of another workspace is never asked about; a removal names its
// evidence (seam-request-id, svix id).
func TestE2EOnlySeamsOwnNotFoundConfirms(t *testing.T) {
	t.Parallel()
	m := newMisbehavingSeam(t)
	env := newServeEnv(t, pgtest.NewURL(t))
	env["SEAM_API_KEY"] = "seam_test_key"
	env["SEAM_API_URL"] = m.srv.URL
	env["CODEWATCH_SEAM_RPS"] = "1000"
	env["CODEWATCH_SEAM_TIMEOUT"] = "500ms"
	env["CODEWATCH_STARTUP_BACKFILL"] = "0"
	s := startServer(t, "serve", env)
	waitFor(t, 10*time.Second, "the key's workspace in the log", func() bool {
		return len(s.logsWithMsg("seam: API key's workspace")) == 1
	})
	if r := s.logsWithMsg("seam: API key's workspace")[0]; r["workspace_id"] != "ws_mine" {
		t.Fatalf("workspace logged: %v", r)
	}

	at := time.Now().Add(-time.Hour).UTC()
	send := func(typ, code, ws, msgID string, when time.Time) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"event_id": "ev_" + typ + "_" + code, "event_type": typ,
			"access_code_id": code, "device_id": "dev_" + code, "workspace_id": ws,
			"occurred_at": when.Format(time.RFC3339Nano), "created_at": when.Format(time.RFC3339Nano)})
		if st, _, err := postSigned(s.client, s, msgID, body); err != nil || st != http.StatusOK {
			t.Fatalf("%s %s: %d %v", typ, code, st, err)
		}
	}
	codes := append([]string{"control", "otherws"}, misbehaviours...)
	for _, c := range codes {
		ws := "ws_mine"
		if c == "otherws" {
			ws = "ws_other"
		}
		send("access_code.set_on_device", c, ws, seamevent.NewMessageID(), at)
		send("access_code.deleted", c, ws, seamevent.NewMessageID(), at.Add(time.Minute))
	}

	client := &http.Client{Timeout: 40 * time.Second}
	type answer struct {
		status int
		body   map[string]any
		took   time.Duration
	}
	post := func(path string) answer {
		req, _ := http.NewRequest(http.MethodPost, s.Ops+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		began := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("POST %s: %v", path, err)
			return answer{}
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Errorf("POST %s: %d, not JSON: %s", path, resp.StatusCode, raw)
		}
		return answer{resp.StatusCode, out, time.Since(began)}
	}
	answers := map[string]answer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range codes {
		wg.Go(func() {
			a := post("/v1/access_codes/" + c + "/reconcile")
			mu.Lock()
			answers[c] = a
			mu.Unlock()
		})
	}
	wg.Wait()

	// The control: Seam's own 404 confirms, and names itself.
	if a := answers["control"]; a.status != http.StatusOK {
		t.Fatalf("control: %d %v", a.status, a.body)
	}
	ctl := s.code("control")
	if ctl.DeletionState != "removed" || ctl.ConfirmedBy == nil || *ctl.ConfirmedBy != "poll" ||
		ctl.Confirmation == nil || ctl.Confirmation.SeamRequestID != "req-access_codes/get-control" ||
		ctl.Confirmation.ConfirmedBy != "poll" || ctl.Confirmation.At.IsZero() {
		b, _ := json.Marshal(ctl)
		t.Fatalf("control not confirmed with its evidence: %s", b)
	}

	// Everything else: 502 seam_api_error at once, saying what came back;
	// nothing confirmed; the failed lookup under seam.
	said := map[string]string{
		"html404": "text/html", "gateway404": "JSON body without Seam's error shape", "noshape404": "not Seam's error body",
		"othertype404": "device_not_found", "redirect": "redirect", "noaccesscode": "without an access_code",
		"anothercode": "another access code", "htmlok": "not the JSON Seam sends", "fivexx": "502", "timeout": "did not answer",
	}
	for _, c := range misbehaviours {
		a := answers[c]
		errBody, _ := a.body["error"].(map[string]any)
		if a.status != http.StatusBadGateway || errBody["type"] != "seam_api_error" {
			t.Errorf("%s: reconcile answered %d %v, want 502 seam_api_error", c, a.status, a.body)
			continue
		}
		if msg, _ := errBody["message"].(string); !strings.Contains(msg, said[c]) {
			t.Errorf("%s: the message does not say what came back (%q): %q", c, said[c], msg)
		}
		if a.took > 20*time.Second {
			t.Errorf("%s: answered after %s", c, a.took)
		}
		got := s.code(c)
		if got.DeletionState == "removed" || got.ConfirmedBy != nil || got.Confirmation != nil {
			t.Errorf("%s: FALSE ALL-CLEAR: %s confirmed_by %v", c, got.DeletionState, got.ConfirmedBy)
		}
		if got.Seam == nil || got.Seam.Error == nil || got.Seam.Error.Type != "seam_api_error" || got.Seam.Error.Message == "" {
			t.Errorf("%s: the failed lookup is not shown under seam: %+v", c, got.Seam)
		}
	}
	if m.called("elsewhere", "") != 0 {
		t.Errorf("the redirect was followed")
	}

	// Another workspace: never asked about, said so.
	if a := answers["otherws"]; a.status != http.StatusConflict || a.body["error"].(map[string]any)["type"] != "workspace_not_covered" {
		t.Errorf("otherws: reconcile answered %d %v", a.status, a.body)
	}
	if got := s.code("otherws"); got.DeletionState != "awaiting_removal" || got.Seam == nil || got.Seam.Error == nil ||
		got.Seam.Error.Type != "workspace_not_covered" {
		t.Errorf("otherws: %s %+v", got.DeletionState, got.Seam)
	}
	send("access_code.set_on_device", "otherws_live", "ws_other", seamevent.NewMessageID(), at)
	if a := post("/v1/access_codes/otherws_live/delete"); a.status != http.StatusConflict ||
		a.body["error"].(map[string]any)["type"] != "workspace_not_covered" {
		t.Errorf("otherws_live: delete answered %d %v", a.status, a.body)
	}
	for _, c := range []string{"otherws", "otherws_live"} {
		if n := m.called("access_codes/get", c) + m.called("access_codes/delete", c); n != 0 {
			t.Errorf("Seam was asked %d times about %s, a code of another workspace", n, c)
		}
	}

	// A deletion answered by an HTML 404 is a Seam API error, not "Seam has
	// no such code"; Seam's own 404 is.
	if a := post("/v1/access_codes/delete_html404/delete"); a.status != http.StatusBadGateway {
		t.Errorf("delete answered by an HTML 404: %d %v", a.status, a.body)
	}
	if a := post("/v1/access_codes/unknown_to_seam/delete"); a.status != http.StatusNotFound {
		t.Errorf("delete answered by Seam's own 404: %d %v", a.status, a.body)
	}

	// The background job retries the failed lookups with backoff (River's:
	// about 1 s after the first failure, then longer): the route's attempt
	// and at least one retry reach the stand-in.
	waitFor(t, 30*time.Second, "the reconcile job's retry", func() bool {
		return m.called("access_codes/get", "html404") >= 2
	})
	if got := s.code("html404"); got.DeletionState == "removed" {
		t.Fatalf("html404 removed after a retry")
	}

	// A removal by webhook names its event and svix id.
	msgID := seamevent.NewMessageID()
	send("access_code.removed_from_device", "gateway404", "ws_mine", msgID, at.Add(2*time.Minute))
	got := s.code("gateway404")
	if got.DeletionState != "removed" || got.Confirmation == nil || got.Confirmation.SvixID != msgID ||
		got.Confirmation.EventID != "ev_access_code.removed_from_device_gateway404" || got.Confirmation.ConfirmedBy != "webhook" {
		b, _ := json.Marshal(got)
		t.Fatalf("removal by webhook: %s", b)
	}
	if !bytes.Contains([]byte(s.logs()), []byte(`"workspace_id":"ws_mine"`)) {
		t.Errorf("the workspace is not in the log")
	}
}
