package console

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
)

// The parts of a code's page that later features fill (severity, the
// lock's connectivity, Seam's API view, codewatch's deletion request,
// confirmed_by, more facts, action buttons) render when their view fields
// are set, and not at all when they are not.
func TestCodePageOptionalParts(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	pages := mustParsePages(func() time.Time { return now })
	reason, dev := "failed_to_remove", "dev-1"
	code := &lifecycle.AccessCode{AccessCodeID: "ac-1", DeviceID: &dev, DeletionState: lifecycle.Failed,
		NeedsTroubleshooting: true, TroubleshootingReason: &reason}
	render := func(v codeView, actions []CodeAction) string {
		t.Helper()
		var buf bytes.Buffer
		d := codeData{Code: v, Evidence: &lifecycle.Evidence{}, CanAck: true, Actions: actions}
		p := page{Title: "ac-1", Data: d, Now: now, CSRF: "csrf-token", Session: &session{Name: "alice"}}
		if err := pages.sets["code"].ExecuteTemplate(&buf, "layout", p); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}

	bare := render(newCodeView(code), nil)
	for _, absent := range []string{"sev-", "lock-online", "lock-offline", "Seam's API", "Deletion requested by codewatch", "/actions/", "by polling"} {
		if strings.Contains(bare, absent) {
			t.Errorf("a code without the optional parts shows %q", absent)
		}
	}

	v := newCodeView(code)
	v.Severity = "critical"
	v.Lock.Status = "offline"
	v.ConfirmedBy = "poll"
	v.Seam = &seamView{PolledAt: now.Add(-3 * time.Minute), Found: true, Status: "removing",
		Messages: []seamMessage{{Level: "warning", Scope: "device", Code: "device_offline", Text: "Device is offline"}}}
	end := now.Add(-time.Minute)
	v.Request = &requestView{RequestedAt: now.Add(-10 * time.Minute), RequestedBy: "bob", ActionAttemptID: "aa-9",
		Status: "error", Error: "Lock refused", EndedAt: &end}
	v.Facts = []fact{{Label: "Lock name", Value: "Front door"}}
	full := render(v, []CodeAction{
		{Name: "reconcile", Label: "Reconcile now", Help: "Ask Seam's API now."},
		{Name: "delete", Label: "Request deletion", Confirm: "Delete ac-1 in Seam?", Danger: true},
	})
	for _, want := range []string{
		`<span class="badge sev-critical">Critical</span>`, `<span class="badge lock-offline">Offline</span>`,
		"by polling Seam's API", "Seam's API, polled", "3 min ago", "status <code>removing</code>", "Device is offline",
		"Deletion requested by codewatch", "<strong>bob</strong>", "<code>aa-9</code>", "<strong>error</strong>", "Lock refused",
		"<dt>Lock name</dt><dd>Front door</dd>",
		`action="/console/codes/ac-1/actions/reconcile"`, ">Reconcile now</button>", "Ask Seam&#39;s API now.",
		`action="/console/codes/ac-1/actions/delete" class="action">`,
		`<label class="check"><input type="checkbox" name="confirm" value="yes" required> Delete ac-1 in Seam?</label>`,
		`<button type="submit" class="danger">Request deletion</button>`,
		`<input type="hidden" name="csrf" value="csrf-token">`,
	} {
		if !strings.Contains(full, want) {
			t.Errorf("the code's page lacks %s", want)
		}
	}
}

func TestHumanTimes(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		2 * time.Second:                 "just now",
		45 * time.Second:                "45 s ago",
		12*time.Minute + 59*time.Second: "12 min ago",
		3*time.Hour + 12*time.Minute:    "3 h 12 min ago",
		5 * time.Hour:                   "5 h ago",
		26 * time.Hour:                  "1 d 2 h ago",
		72 * time.Hour:                  "3 d ago",
		45 * 24 * time.Hour:             "45 d ago",
		-40 * time.Second:               "in 40 s",
	} {
		if got := relative(now.Add(-d), now); got != want {
			t.Errorf("%s before: %q, want %q", d, got, want)
		}
	}
	got := string(when(now.Add(-3*time.Hour-12*time.Minute), now))
	if want := `<time datetime="2026-11-30T08:48:00Z" title="2026-11-30 08:48:00 UTC">3 h 12 min ago</time>`; got != want {
		t.Errorf("when: %s, want %s", got, want)
	}
}

func TestSeamMessages(t *testing.T) {
	details := json.RawMessage(`{"access_code_warnings":[{"message":"Delay in removing code from device.","warning_code":"delay_in_removing_from_device"}],
		"device_errors":[{"message":"Device is offline","error_code":"device_offline"}],"access_code_errors":[],"event_id":"e1",
		"connected_account_errors":"not a list"}`)
	got := seamMessages(details)
	want := []seamMessage{
		{Level: "error", Scope: "device", Code: "device_offline", Text: "Device is offline"},
		{Level: "warning", Scope: "access code", Code: "delay_in_removing_from_device", Text: "Delay in removing code from device."},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("messages %+v, want %+v", got, want)
	}
	if seamMessages(nil) != nil || seamMessages(json.RawMessage(`[1]`)) != nil {
		t.Error("no details: want no messages")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/codes/ac-1?x=1":       "/console/codes/ac-1?x=1",
		"":                              "/console/",
		"//evil.example/console/":       "/console/",
		"https://evil.example/":         "/console/",
		"/console/\\evil":               "/console/",
		"/consolex":                     "/console/",
		"/v1/summary":                   "/console/",
		"/console/signin?next=/x":       "/console/",
		"/console/a\r\nSet-Cookie: x=1": "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// Defect (issue 19, found by FuzzStoredEventsRead): a stored body nested
// thousands of levels deep cost a code's page seconds of CPU and hundreds of
// MB, as indenting it writes each level's indent on each of its lines. Such
// a body is shown as it came (masked, cut at rawLimit); others are indented.
func TestMaskedJSONDeepNestingIsCheap(t *testing.T) {
	deep := []byte(`{"x":` + strings.Repeat(`{"a":`, 9000) + "1" + strings.Repeat("}", 9001))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	text, note := maskedJSON(deep)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("showing a %d KiB body allocated %d MiB", len(deep)>>10, got>>20)
	}
	if len(text) > rawLimit || !strings.HasPrefix(text, `{"x":{"a":`) || note == "" {
		t.Errorf("deep body shown as %d bytes %.40q, note %q", len(text), text, note)
	}
	if text, _ := maskedJSON([]byte(`{"a":[1,{"b":2}]}`)); text != "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ]\n}" {
		t.Errorf("a plain body is not indented: %q", text)
	}
}
