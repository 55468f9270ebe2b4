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

// Defect (issue 19, point 11's sibling): `codewatch send` followed
// redirects, so a 302 turned the signed POST into a GET without the event,
// answered 200, and the command reported success. Svix does not follow
// redirects (a 3xx is a failed delivery): neither does Send, whatever
// client it is given, and the caller sees the 3xx.
func TestSenderDoesNotFollowRedirects(t *testing.T) {
	var followed []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = append(followed, r.Method)
			w.Write([]byte(`{"ok":true}`))
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	for _, client := range []*http.Client{nil, {Timeout: 5 * time.Second}} {
		s := &seamevent.Sender{URL: srv.URL + "/webhooks/seam", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Client: client}
		rep, err := s.Send(context.Background(), "msg_1", []byte(`{"event_id":"e"}`))
		if err != nil || rep.Status != http.StatusFound {
			t.Fatalf("client %v: %v, status %d; want the 302 itself", client, err, rep.Status)
		}
	}
	if len(followed) != 0 {
		t.Fatalf("the redirect was followed: %v", followed)
	}
}
