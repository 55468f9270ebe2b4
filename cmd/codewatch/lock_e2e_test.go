package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// The worst case end to end, with the real binary: a deleted code is used at
// the lock. Exactly one critical alert reaches the signed-webhook sink; the
// code shows on_device true and the reason first in triage; acknowledging it
// sends one resolution.
func TestE2EUsedAfterDeletion(t *testing.T) {
	t.Parallel()
	alertSecret := newWebhookSecret()
	hooks := newWebhookRecorder(t, alertSecret)
	env := newServeEnv(t, pgtest.NewURL(t))
	env["CODEWATCH_ALERT_WEBHOOK_URL"] = hooks.URL() + "/alerts"
	env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = alertSecret
	s := startServer(t, "serve", env)

	code, lock := seamevent.NewID(), seamevent.NewID()
	deletedAt := time.Now().Add(-10 * time.Minute)
	post := func(typ string, at time.Time, fields map[string]any) {
		t.Helper()
		body := map[string]any{"event_id": seamevent.NewID(), "event_type": typ, "device_id": lock,
			"workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9", "occurred_at": at.UTC().Format(time.RFC3339Nano),
			"created_at": at.UTC().Format(time.RFC3339Nano)}
		for k, v := range fields {
			body[k] = v
		}
		b, _ := json.Marshal(body)
		if st, _, err := postSigned(s.client, s, seamevent.NewMessageID(), b); err != nil || st != http.StatusOK {
			t.Fatalf("%s: %d %v", typ, st, err)
		}
	}
	post(lifecycle.TypeSetOnDevice, deletedAt.Add(-time.Hour), map[string]any{"access_code_id": code})
	post(lifecycle.TypeDeleted, deletedAt, map[string]any{"access_code_id": code})
	post(lifecycle.TypeRemovedFromDevice, deletedAt.Add(time.Minute), map[string]any{"access_code_id": code})
	// Before the deletion, another code, another lock: nothing.
	post(lifecycle.TypeLockUnlocked, deletedAt.Add(-time.Minute), map[string]any{"access_code_id": code, "method": "keycode"})
	post(lifecycle.TypeLockUnlocked, deletedAt.Add(2*time.Minute), map[string]any{"access_code_id": seamevent.NewID(), "method": "keycode"})
	if got := s.code(code); got.DeletionState != lifecycle.Removed || got.NeedsTroubleshooting {
		t.Fatalf("before the use: %s %v", got.DeletionState, got.NeedsTroubleshooting)
	}
	// The lock opens with the deleted code.
	post(lifecycle.TypeLockUnlocked, deletedAt.Add(5*time.Minute), map[string]any{"access_code_id": code, "method": "keycode"})
	var r struct {
		AccessCode map[string]any `json:"access_code"`
	}
	s.api(http.MethodGet, "/v1/access_codes/"+code, s.Token, nil, &r)
	if r.AccessCode["troubleshooting_reason"] != "used_after_deletion" || r.AccessCode["troubleshooting_severity"] != "critical" ||
		r.AccessCode["on_device"] != true || r.AccessCode["needs_troubleshooting"] != true || r.AccessCode["deletion_state"] != "removed" {
		t.Fatalf("after the use: %v", r.AccessCode)
	}
	var list struct {
		AccessCodes []struct {
			ID string `json:"access_code_id"`
		} `json:"access_codes"`
	}
	s.api(http.MethodGet, "/v1/access_codes?needs_troubleshooting=true", s.Token, nil, &list)
	if len(list.AccessCodes) == 0 || list.AccessCodes[0].ID != code {
		t.Fatalf("triage: %+v", list)
	}
	waitFor(t, 15*time.Second, "the critical alert", func() bool { return len(hooks.alerts(code)) >= 1 })
	// The same unlock delivered again: still one alert.
	time.Sleep(500 * time.Millisecond)
	got := hooks.alerts(code)
	if len(got) != 1 || got[0].Type != lifecycle.AlertTrouble || got[0].Reason != lifecycle.ReasonUsedAfterDeletion ||
		got[0].Payload == nil || got[0].Payload.Severity != "critical" {
		t.Fatalf("alerts: %+v", got)
	}
	if st := s.api(http.MethodPost, "/v1/access_codes/"+code+"/acknowledge", s.Token, map[string]string{"note": "removed at the keypad"}, nil); st != http.StatusOK {
		t.Fatalf("acknowledge: %d", st)
	}
	waitFor(t, 15*time.Second, "the resolution", func() bool { return len(hooks.alerts(code)) >= 2 })
	time.Sleep(300 * time.Millisecond)
	got = hooks.alerts(code)
	if len(got) != 2 || got[1].Type != lifecycle.AlertResolved || got[1].Payload.Severity != "info" {
		t.Fatalf("after the acknowledgement: %+v", got)
	}
	if p := hooks.problems(); len(p) > 0 {
		t.Fatalf("sink problems: %v", p)
	}
	s.api(http.MethodGet, "/v1/access_codes/"+code, s.Token, nil, &r)
	if r.AccessCode["needs_troubleshooting"] != false || r.AccessCode["troubleshooting_reason"] != "used_after_deletion" {
		t.Fatalf("acknowledged: %v", r.AccessCode)
	}
	var sum struct {
		Summary map[string]any `json:"summary"`
	}
	s.api(http.MethodGet, "/v1/summary", s.Token, nil, &sum)
	if sum.Summary["codes_used_after_deletion_24h"] != float64(1) {
		t.Fatalf("summary: %v", sum.Summary)
	}
}
