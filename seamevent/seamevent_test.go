package seamevent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

// Every body Build makes is one codewatch (and so Seam's shape) accepts, with
// the fields Seam's own examples carry for that type.
func TestBuildMatchesSeamShapes(t *testing.T) {
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	want := map[string][]string{
		"access_code.created":                       {},
		"access_code.set_on_device":                 {"code"},
		"access_code.deleted":                       {"code"},
		"access_code.removed_from_device":           {},
		"access_code.deleted_external_to_seam":      {},
		"access_code.delay_in_removing_from_device": {"access_code_warnings", "device_errors", "connected_account_errors"},
		"access_code.failed_to_remove_from_device":  {"access_code_errors", "device_errors", "connected_account_warnings"},
		"access_code.delay_in_setting_on_device":    {"access_code_warnings"},
		"lock.locked":                               {"method", "code", "access_code_is_managed"},
	}
	for typ, extra := range want {
		b, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: "ac-1", OccurredAt: at})
		if err != nil {
			t.Fatal(err)
		}
		p, err := lifecycle.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if p.EventType != typ || p.AccessCodeID != "ac-1" || p.OccurredAt == nil || !p.OccurredAt.Equal(at) ||
			p.DeviceID == "" || p.WorkspaceID == "" || p.ConnectedAccountID == "" || p.EventID == "" {
			t.Fatalf("%s: parsed %+v", typ, p)
		}
		var fields map[string]any
		_ = json.Unmarshal(b, &fields)
		for _, k := range extra {
			if _, ok := fields[k]; !ok {
				t.Errorf("%s lacks %s", typ, k)
			}
		}
	}
	if _, err := seamevent.Build("not a type", seamevent.Options{}); err == nil {
		t.Fatal("a malformed type was accepted")
	}
}

// Send signs as Svix does, with a fresh timestamp on every attempt.
func TestSenderSigns(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	v, _ := verify.New([]string{secret}, nil)
	var stamps []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := v.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), 401)
			return
		}
		stamps = append(stamps, r.Header.Get("svix-timestamp")+r.Header.Get("webhook-timestamp"))
		w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	clock := time.Now()
	for i, std := range []bool{false, true} {
		s := &seamevent.Sender{URL: srv.URL, Secret: secret, Standard: std, Now: func() time.Time { return clock.Add(time.Duration(i) * time.Second) }}
		rep, err := s.Send(context.Background(), "msg_1", []byte(`{"event_id":"e"}`))
		if err != nil || rep.Status != 200 {
			t.Fatalf("standard=%v: %v %d %s", std, err, rep.Status, rep.Body)
		}
	}
	if len(stamps) != 2 || stamps[0] == stamps[1] {
		t.Fatalf("timestamps %v", stamps)
	}
}
