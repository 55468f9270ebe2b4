package alert_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

func TestSlackSinkMessageSaysWhatAndWhatNext(t *testing.T) {
	o := newOutbox(t, "slack")
	slack := newSlackReceiver(t)
	o.work(o.pool, alert.WorkerConfig{}, slack.sink())

	code, alertID := o.fail()
	o.waitSettled(1)
	texts := slack.got()
	if len(texts) != 1 {
		t.Fatalf("slack got %d messages, want 1", len(texts))
	}
	text := texts[0]
	for _, want := range []string{
		code, testDevice, lifecycle.ReasonFailed,
		"Failed to remove code from device.", // Seam's own error message
		"Device is offline",                  // and the device's
		lifecycle.NextStep(lifecycle.ReasonFailed, lifecycle.LockStatus{}),
		alertID,
		"deleted 10m00s ago",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
	if row := o.delivery(alertID, "slack"); row.Status != "sent" {
		t.Fatalf("slack delivery %+v, want sent", row)
	}

	// The acknowledgement's resolution says who and why, without a next step.
	if _, _, err := o.store.Acknowledge(o.ctx, code, "ops@example.com", "code gone in the lock app", ""); err != nil {
		t.Fatal(err)
	}
	o.waitSettled(2)
	texts = slack.got()
	if len(texts) != 2 {
		t.Fatalf("slack got %d messages, want 2", len(texts))
	}
	res := texts[1]
	for _, want := range []string{"Resolved", "acknowledged by ops@example.com", "code gone in the lock app", code, testDevice} {
		if !strings.Contains(res, want) {
			t.Errorf("resolution text lacks %q:\n%s", want, res)
		}
	}
	if strings.Contains(res, "Next step") {
		t.Errorf("resolution text has a next step:\n%s", res)
	}

	// An overdue deletion, which Seam said nothing about: the reason and
	// the overdue next step.
	late := seamevent.NewID()
	now := o.clock.Now()
	failCodeErrOverdue(t, o, late, now)
	o.waitSettled(3)
	texts = slack.got()
	if len(texts) != 3 {
		t.Fatalf("slack got %d messages, want 3", len(texts))
	}
	for _, want := range []string{late, lifecycle.ReasonOverdue, lifecycle.NextStep(lifecycle.ReasonOverdue, lifecycle.LockStatus{})} {
		if !strings.Contains(texts[2], want) {
			t.Errorf("overdue text lacks %q:\n%s", want, texts[2])
		}
	}
}

// failCodeErrOverdue ingests a deletion that is already past the removal
// timeout, so it is flagged overdue at ingest.
func failCodeErrOverdue(t *testing.T, o *outbox, code string, now time.Time) {
	t.Helper()
	for _, e := range []struct {
		typ string
		at  time.Duration
	}{
		{lifecycle.TypeSetOnDevice, -2 * testTimeout},
		{lifecycle.TypeDeleted, -testTimeout - time.Minute},
	} {
		if err := ingest(o.store, e.typ, code, now.Add(e.at)); err != nil {
			t.Fatal(err)
		}
	}
}

// syncBuffer is safe for a logger and a test to share.
type syncBuffer = logtest.Buffer

func TestLogSinkWritesOneStructuredLine(t *testing.T) {
	o := newOutbox(t, "log")
	var buf syncBuffer
	o.work(o.pool, alert.WorkerConfig{}, alert.LogSink{Logger: newJSONLogger(&buf)})

	code, alertID := o.fail()
	o.waitSettled(1)
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), buf.String())
	}
	l := lines[0]
	want := map[string]any{
		"level":                  "WARN",
		"msg":                    "alert",
		"type":                   lifecycle.AlertTrouble,
		"alert_id":               alertID,
		"access_code_id":         code,
		"device_id":              testDevice,
		"workspace_id":           testWorkspace,
		"deletion_state":         string(lifecycle.Failed),
		"troubleshooting_reason": lifecycle.ReasonFailed,
		"age_seconds":            float64(600),
		"sequence":               float64(1),
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("log field %s = %v, want %v", k, l[k], v)
		}
	}
	if msg, _ := l["message"].(string); !strings.Contains(msg, code) {
		t.Errorf("log message %q does not name the code", msg)
	}
	if row := o.delivery(alertID, "log"); row.Status != "sent" {
		t.Fatalf("log delivery %+v, want sent", row)
	}
}

func TestSinkErrorsDoNotLeakSlackWebhookPath(t *testing.T) {
	o := newOutbox(t, "slack")
	slack := newSlackReceiver(t)
	slack.mu.Lock()
	slack.fail = true
	slack.mu.Unlock()
	o.work(o.pool, alert.WorkerConfig{BackoffBase: time.Hour, BackoffMax: time.Hour}, slack.sink())
	_, alertID := o.fail()

	var row deliveryRow
	// An attempt is counted before the send and its error recorded after:
	// wait for both.
	o.waitFor("a failed attempt", func() bool {
		row = o.delivery(alertID, "slack")
		return row.Attempts > 0 && row.LastError != nil
	})
	if row.Status != "pending" || row.LastError == nil || !strings.Contains(*row.LastError, "500") {
		t.Fatalf("after a 500: %+v, want pending with the status recorded", row)
	}
	secretPart := slack.path[strings.LastIndex(slack.path, "/")+1:]
	if strings.Contains(*row.LastError, secretPart) {
		t.Fatalf("last_error leaks the Slack webhook path: %q", *row.LastError)
	}

	// Connection refused: the URL in net/http's error is redacted too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	down := alert.SlackSink{URL: "http://" + addr + slack.path, Client: &http.Client{Timeout: 5 * time.Second}}
	err = down.Deliver(context.Background(), &lifecycle.AlertPayload{AlertID: alertID}, nil)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("after connection refused: %v", err)
	}
	if strings.Contains(err.Error(), secretPart) {
		t.Fatalf("the error leaks the Slack webhook path: %q", err)
	}
}

// The Store queues for "slack" but this process has only the log sink: the
// slack delivery is given up at once (recorded, logged, counted), not left
// waiting forever, and the log delivery goes out.
func TestDeliveryToUnconfiguredSinkIsGivenUp(t *testing.T) {
	o := newOutbox(t, "log", "slack")
	var buf syncBuffer
	var givenUp atomic.Int64
	o.work(o.pool, alert.WorkerConfig{Logger: newJSONLogger(&buf),
		Counters: alert.Counters{GivenUp: func(sink string) { givenUp.Add(1) }}},
		alert.LogSink{Logger: newJSONLogger(&buf)})
	_, alertID := o.fail()
	o.waitSettled(2)
	if row := o.delivery(alertID, "log"); row.Status != "sent" {
		t.Fatalf("log delivery %+v, want sent", row)
	}
	row := o.delivery(alertID, "slack")
	if row.Status != "given_up" || row.GivenUpAt == nil || row.Attempts != 0 || row.LastError == nil ||
		!strings.Contains(*row.LastError, "not configured") {
		t.Fatalf("slack delivery %+v, want given up at once as not configured", row)
	}
	if givenUp.Load() != 1 || !strings.Contains(buf.String(), `"msg":"alert delivery given up"`) {
		t.Fatalf("give-up counted %d times; log:\n%s", givenUp.Load(), buf.String())
	}
}

func TestWebhookSinkDeliverSignsWithAlertID(t *testing.T) {
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	p := &lifecycle.AlertPayload{Type: lifecycle.AlertTrouble, AlertID: seamevent.NewID(), AccessCodeID: seamevent.NewID()}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	sink := rcv.sink(secret)
	if err := sink.Deliver(context.Background(), p, raw); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	rcv.noRejections()
	if got := rcv.ids(); len(got) != 1 || got[0] != p.AlertID {
		t.Fatalf("receiver got %v, want [%s]", got, p.AlertID)
	}
	// A stale signing clock is refused by the receiver's svix check, and the
	// sink reports the refusal.
	sink.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	if err := sink.Deliver(context.Background(), p, raw); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("deliver with a stale timestamp: %v, want a 401 error", err)
	}
}

func newJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, nil))
}

func TestSeamMessagesReadsStoredTroubleDetails(t *testing.T) {
	// troubleshooting_details as lifecycle stores them for a failure: Seam's
	// arrays plus the trouble's event_id.
	details := json.RawMessage(`{
		"access_code_errors": [{"created_at": "2025-01-01T00:00:00.000Z", "message": "Failed to remove code from device.", "error_code": "failed_to_remove_from_device"}],
		"access_code_warnings": [],
		"device_errors": [{"created_at": "2025-01-01T00:00:00.000Z", "message": "Device is offline", "error_code": "device_offline"}],
		"device_warnings": [{"message": "Lock battery low", "warning_code": "low_battery"}],
		"event_id": "7e0c1b8a-6f0e-4b47-9d1f-2b1a3c4d5e6f"
	}`)
	got := alert.SeamMessages(details)
	want := []string{
		`"Failed to remove code from device." (failed_to_remove_from_device)`,
		`"Device is offline" (device_offline)`,
		`"Lock battery low" (low_battery)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("SeamMessages = %q, want %q", got, want)
	}
	for _, empty := range []string{``, `null`, `{}`, `not json`, `{"event_id": "x"}`} {
		if got := alert.SeamMessages(json.RawMessage(empty)); len(got) != 0 {
			t.Errorf("SeamMessages(%q) = %q, want none", empty, got)
		}
	}
}

// A deleted code used at the lock cannot be mistaken for routine trouble.
func TestSlackTextCritical(t *testing.T) {
	used, failed := lifecycle.ReasonUsedAfterDeletion, lifecycle.ReasonFailed
	crit := alert.SlackText(&lifecycle.AlertPayload{Type: lifecycle.AlertTrouble, AccessCodeID: "c", DeviceID: "d",
		TroubleshootingReason: &used, Severity: lifecycle.SeverityCritical, AlertID: "a1"})
	warn := alert.SlackText(&lifecycle.AlertPayload{Type: lifecycle.AlertTrouble, AccessCodeID: "c", DeviceID: "d",
		TroubleshootingReason: &failed, Severity: lifecycle.SeverityWarning, AlertID: "a2"})
	for _, want := range []string{"CRITICAL", "<!channel>", "the door was opened with it after its deletion", "`used_after_deletion`"} {
		if !strings.Contains(crit, want) {
			t.Errorf("critical text lacks %q:\n%s", want, crit)
		}
	}
	if strings.Contains(warn, "CRITICAL") || strings.Contains(warn, "<!channel>") {
		t.Errorf("warning text looks critical:\n%s", warn)
	}
}

// Defect (issue 19, sibling of point 7): the Slack text turned age_seconds
// into a time.Duration, which overflows past 292 years, and printed a
// deletion in the future as a negative age.
func TestSlackTextAnyDeletionTime(t *testing.T) {
	for _, c := range []struct {
		age  int64
		want string
	}{
		{600, "deleted 10m00s ago"},
		{90061, "deleted 25h01m ago"},
		{63_000_000_000, "deleted 17500000h00m ago"},
		{-3600, "deleted in the future"},
	} {
		at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
		text := alert.SlackText(&lifecycle.AlertPayload{Type: lifecycle.AlertTrouble, AccessCodeID: "ac", DeletedAt: &at, AgeSeconds: c.age})
		if !strings.Contains(text, c.want) {
			t.Errorf("age %d: text lacks %q:\n%s", c.age, c.want, text)
		}
	}
}

// A PIN reused on the lock (issue "Never a false all-clear", 5): the
// deleted code may still be there, and the live code that shares its PIN
// is named, not taken for the deleted one.
func TestSlackTextReusedPIN(t *testing.T) {
	used := lifecycle.ReasonUsedAfterDeletion
	details := json.RawMessage(`{"access_code_errors":[],"access_code_warnings":[],"device_errors":[],"device_warnings":[],"event_id":"u",
		"lock_event":{"event_id":"u","event_type":"lock.unlocked","matched_by":"pin","live_codes_with_same_pin":["live-x"]}}`)
	text := alert.SlackText(&lifecycle.AlertPayload{Type: lifecycle.AlertTrouble, AccessCodeID: "c", DeviceID: "d",
		TroubleshootingReason: &used, TroubleshootingDetails: details, Severity: lifecycle.SeverityCritical, AlertID: "a1",
		NextStep: lifecycle.TroubleNextStep(used, details, lifecycle.LockStatus{})})
	for _, want := range []string{"CRITICAL", "<!channel>", "may still be on the lock", "`live-x`", "Next step: The lock opened"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "a deleted access code is still on the lock") || strings.Contains(text, "opened with it after") {
		t.Errorf("text blames the deleted code alone:\n%s", text)
	}
}
