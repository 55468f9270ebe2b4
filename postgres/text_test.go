package postgres_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// Defect (issue 19, point 10's sibling): codewatch's own events copy Seam's
// texts (an action attempt's error, a polled code's errors); one holding a
// NUL made the whole details unstorable as jsonb, so they were dropped: a
// failed deletion attempt stayed "pending" and a poll that found
// failed_to_remove_from_device flagged nothing. Now the NUL is replaced and
// the details, and what they say, are kept.
func TestOwnEventsKeepSeamTextsWithANUL(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	now := e.clock.Now()

	polled := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, polled, now.Add(-time.Hour))
	e.send(lifecycle.TypeDeleted, polled, now.Add(-5*time.Minute))
	e.record(lifecycle.OwnEvent("cw_poll_nul", lifecycle.TypeAccessCodePolled, now,
		lifecycle.CodeRef{AccessCodeID: polled, DeviceID: swDevice},
		lifecycle.PollDetails{Status: "set", Warnings: []json.RawMessage{},
			Errors: []json.RawMessage{json.RawMessage(`{"error_code":"failed_to_remove_from_device","message":"lock said \u0000 \ud800"}`)}}))
	c := e.get(polled)
	if !c.NeedsTroubleshooting || c.TroubleshootingReason == nil || *c.TroubleshootingReason != lifecycle.ReasonFailed {
		t.Fatalf("after a poll that found failed_to_remove_from_device: %s needs %v reason %v", c.DeletionState, c.NeedsTroubleshooting, c.TroubleshootingReason)
	}
	if c.Seam == nil || len(c.Seam.Errors) != 1 || !strings.Contains(string(c.Seam.Errors[0]), "lock said") {
		t.Fatalf("Seam view %+v", c.Seam)
	}

	attempted := seamevent.NewID()
	e.send(lifecycle.TypeSetOnDevice, attempted, now.Add(-time.Hour))
	e.record(requested(attempted, "aa_nul", now.Add(-2*time.Minute)))
	e.record(lifecycle.OwnEvent("cw_attempt_aa_nul_error", lifecycle.TypeActionAttempt, now.Add(-time.Minute),
		lifecycle.CodeRef{AccessCodeID: attempted, DeviceID: swDevice},
		lifecycle.AttemptDetails{ActionAttemptID: "aa_nul", Status: "error",
			Error: &lifecycle.AttemptError{Type: "provider_error", Message: "the lock's cloud said \x00\xff"}}))
	c = e.get(attempted)
	if r := c.DeletionRequest; r == nil || r.Status != "error" || r.Error == nil || !strings.Contains(r.Error.Message, "cloud said") ||
		!utf8.ValidString(r.Error.Message) || strings.ContainsRune(r.Error.Message, 0) {
		t.Fatalf("deletion request after its attempt failed: %+v", r)
	}
	if !c.NeedsTroubleshooting || *c.TroubleshootingReason != lifecycle.ReasonDeleteFailed {
		t.Fatalf("a failed attempt flagged nothing: %s needs %v", c.DeletionState, c.NeedsTroubleshooting)
	}
}

// Defect (issue 19, point 10's sibling): the reason of an access_code.* event
// without an access_code_id quoted its type cut at 64 bytes, inside a
// character for a type like this one, and Postgres refused the quarantine
// row: the webhook was answered 503 on every retry and never kept. Now it
// is quarantined with a reason Postgres takes.
func TestIngestQuarantinesATypeCutInsideACharacter(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	typ := "access_code." + strings.Repeat("x", 51) + strings.Repeat("é", 20) // byte 64 is inside an é
	body, err := json.Marshal(map[string]any{"event_id": seamevent.NewID(), "event_type": typ,
		"occurred_at": e.clock.Now().Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
	if err != nil || res.Outcome != lifecycle.Quarantined || !strings.HasPrefix(res.Reason, "missing_access_code_id") {
		t.Fatalf("ingest: %+v %v, want quarantined as missing_access_code_id", res, err)
	}
	if !utf8.ValidString(res.Reason) {
		t.Fatalf("reason %q", res.Reason)
	}
}
