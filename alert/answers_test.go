package alert_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// textOK reports whether Postgres text (and jsonb) can hold s.
func textOK(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// brokenSink is a webhook endpoint that answers 500 with body to every
// alert but the one named by accept, which it answers 204, recording the
// webhook-id of each alert it accepts.
type brokenSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	body   []byte
	accept string
	got    []string
}

func newBrokenSink(t *testing.T) *brokenSink {
	t.Helper()
	b := &brokenSink{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		defer b.mu.Unlock()
		if id := r.Header.Get("webhook-id"); id == "" || id != b.accept {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write(b.body)
			return
		}
		b.got = append(b.got, r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// Defect (issue 19, point 10): a sink's error text cut at 500 bytes inside a
// UTF-8 character, or holding invalid UTF-8 or a NUL, made Postgres refuse
// the write (22021): the failure was not recorded, the give-up could never
// be recorded, and every later alert of the code waited behind it forever.
// Now each is recorded, retried, given up past the age limit, and the
// code's next alert goes out.
func TestDeliveryGivenUpWhateverTheSinkAnswered(t *testing.T) {
	for _, tc := range []struct {
		name string
		body func(prefix string) []byte
	}{
		{"500th byte inside a character", func(prefix string) []byte {
			// The error is prefix + body: its 500th byte is the first of a
			// three-byte euro sign.
			return []byte(strings.Repeat("x", 499-len(prefix)) + strings.Repeat("€", 10))
		}},
		{"invalid UTF-8 and a NUL", func(string) []byte {
			return []byte("upstream said \xff\xfe\x00 and \xc3 then \xed\xa0\x80 (a surrogate)")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutbox(t, "webhook")
			sink := newBrokenSink(t)
			// The sink's error is "<host>/... answered 500: <body>".
			prefix := sink.srv.URL + "/... answered 500: "
			sink.body = tc.body(prefix)
			o.work(o.pool, alert.WorkerConfig{MaxAge: 3 * time.Second, BackoffBase: 100 * time.Millisecond,
				BackoffMax: 200 * time.Millisecond},
				alert.WebhookSink{URL: sink.srv.URL + "/hook", Secret: newSecret(t), Client: &http.Client{Timeout: 5 * time.Second}})
			code, first := o.fail()
			if _, _, err := o.store.Acknowledge(o.ctx, code, "ops", "done", ""); err != nil {
				t.Fatal(err)
			}
			ids := o.alertIDs(code)
			// The sink accepts the second alert from now on: it must still
			// wait for the first to be given up (one code's alerts go out in
			// order). Accepting it only once the first was given up raced
			// the worker, which tries the second at once.
			sink.mu.Lock()
			sink.accept = ids[1]
			sink.mu.Unlock()
			o.waitFor("a failure recorded while retrying", func() bool {
				row := o.delivery(first, "webhook")
				return row.Status == "pending" && row.Attempts >= 2 && row.LastError != nil
			})
			o.waitFor("the first delivery to be given up", func() bool { return o.delivery(first, "webhook").Status == "given_up" })
			row := o.delivery(first, "webhook")
			if row.LastError == nil || !textOK(*row.LastError) || len(*row.LastError) > 500 ||
				!strings.Contains(*row.LastError, "answered 500") {
				t.Fatalf("given up with last_error %q", deref(row.LastError))
			}
			o.waitSettled(2)
			second := o.delivery(ids[1], "webhook")
			if second.Status != "sent" || second.SentAt == nil || row.GivenUpAt == nil || second.SentAt.Before(*row.GivenUpAt) {
				t.Fatalf("second delivery %+v, want sent after the first was given up (%v)", second, row.GivenUpAt)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if len(sink.got) != 1 || sink.got[0] != ids[1] {
				t.Fatalf("sink accepted %v, want only %s", sink.got, ids[1])
			}
			// River recorded each failed attempt's error (a NUL in it would
			// make jsonb refuse the record and leave the job running).
			var bad int
			if err := o.pool.QueryRow(o.ctx, `SELECT count(*) FROM river_job
				WHERE args->>'alert_id' = $1 AND (state = 'running' OR errors IS NULL)`, first).Scan(&bad); err != nil || bad != 0 {
				t.Fatalf("%d delivery jobs without their errors recorded: %v", bad, err)
			}
		})
	}
}

// The outbox records any failure text, and a give-up whatever its message:
// invalid UTF-8, NULs, cuts inside characters.
func TestOutboxRecordsAnyErrorText(t *testing.T) {
	o := newOutbox(t, "webhook")
	msgs := []string{
		strings.Repeat("a", 499) + "€€",
		strings.Repeat("é", 400),
		"\x00",
		"\xff\xfe\xfd",
		"half \xe2\x82",
		"\xed\xa0\x80 surrogate",
		strings.Repeat("\x00\xff", 600),
	}
	rng := rand.New(rand.NewPCG(19, 10))
	for range 100 {
		b := make([]byte, rng.IntN(1200))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		msgs = append(msgs, string(b))
	}
	_, pending := o.fail()
	next := o.clock.Now().Add(time.Hour)
	for i, m := range msgs {
		if err := o.store.RecordFailure(o.ctx, pending, "webhook", m, next); err != nil {
			t.Fatalf("record failure %d (%q): %v", i, m, err)
		}
		if row := o.delivery(pending, "webhook"); row.LastError == nil || !textOK(*row.LastError) || len(*row.LastError) > 500 {
			t.Fatalf("failure %d recorded as %q", i, deref(row.LastError))
		}
	}
	for i, m := range msgs[:7] {
		_, alertID := o.fail()
		end := lifecycle.DeliveryEnd{AlertID: alertID, Sink: "webhook", Status: lifecycle.DeliveryGivenUp, Error: m}
		if _, err := o.store.FinishDelivery(o.ctx, end, nil); err != nil {
			t.Fatalf("give up %d (%q): %v", i, m, err)
		}
		row := o.delivery(alertID, "webhook")
		if row.Status != "given_up" || row.LastError == nil || !textOK(*row.LastError) || len(*row.LastError) > 500 {
			t.Fatalf("give-up %d: %+v %q", i, row, deref(row.LastError))
		}
	}
	// A valid message is kept as it was, cut on a character boundary.
	_, alertID := o.fail()
	if err := o.store.RecordFailure(o.ctx, alertID, "webhook", strings.Repeat("a", 499)+"€€", next); err != nil {
		t.Fatal(err)
	}
	if got := deref(o.delivery(alertID, "webhook").LastError); got != strings.Repeat("a", 499) {
		t.Fatalf("cut to %q, want the 499 bytes before the character the cut falls in", got)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// redirector answers every request with status to /elsewhere, where a GET
// (what a client following a 301/302/303 sends) gets 200; it counts what
// reached /elsewhere.
type redirector struct {
	srv      *httptest.Server
	mu       sync.Mutex
	status   int
	followed []string
}

func newRedirector(t *testing.T, status int) *redirector {
	t.Helper()
	r := &redirector{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if req.URL.Path == "/elsewhere" {
			r.mu.Lock()
			r.followed = append(r.followed, req.Method)
			r.mu.Unlock()
			_, _ = io.WriteString(w, "ok")
			return
		}
		r.mu.Lock()
		status := r.status
		r.mu.Unlock()
		http.Redirect(w, req, "/elsewhere", status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// Defect (issue 19, point 11): the sinks followed redirects, so a 302 turned
// the POST into a GET without the alert, which the other side answered 200,
// and the delivery was recorded as sent. Now a 3xx is a failed delivery,
// retried, with its status in the error; the redirect is never followed.
func TestSinksDoNotFollowRedirects(t *testing.T) {
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		r := newRedirector(t, status)
		client := &http.Client{Timeout: 5 * time.Second} // follows redirects, as serve's did
		p := &lifecycle.AlertPayload{Type: lifecycle.AlertTrouble, AlertID: seamevent.NewID(), AccessCodeID: seamevent.NewID()}
		for _, sink := range []alert.Sink{
			alert.WebhookSink{URL: r.srv.URL + "/hook", Secret: newSecret(t), Client: client},
			alert.SlackSink{URL: r.srv.URL + "/services/T1/B2/secret", Client: client},
			alert.WebhookSink{URL: r.srv.URL + "/hook", Secret: newSecret(t)}, // http.DefaultClient
			alert.SlackSink{URL: r.srv.URL + "/services/T1/B2/secret"},
		} {
			err := sink.Deliver(context.Background(), p, []byte(`{}`))
			if err == nil || !strings.Contains(err.Error(), "answered "+strconv.Itoa(status)) {
				t.Errorf("%s sink, %d: error %v, want a failure naming %d", sink.Name(), status, err, status)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("%s sink: the error leaks the path: %v", sink.Name(), err)
			}
		}
		r.mu.Lock()
		if len(r.followed) != 0 {
			t.Errorf("%d: the sinks followed the redirect (%v)", status, r.followed)
		}
		r.mu.Unlock()
	}

	// Through the worker: not recorded as sent, retried, the status kept.
	o := newOutbox(t, "webhook")
	r := newRedirector(t, http.StatusFound)
	o.work(o.pool, alert.WorkerConfig{BackoffBase: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		alert.WebhookSink{URL: r.srv.URL + "/hook", Secret: newSecret(t), Client: &http.Client{Timeout: 5 * time.Second}})
	_, alertID := o.fail()
	o.waitFor("two failed attempts", func() bool {
		row := o.delivery(alertID, "webhook")
		return row.Attempts >= 2 && row.LastError != nil || row.Status != "pending"
	})
	if row := o.delivery(alertID, "webhook"); row.Status != "pending" || row.SentAt != nil || !strings.Contains(deref(row.LastError), "302") {
		t.Fatalf("delivery after 302s: %+v %q, want pending with the 302 recorded", row, deref(row.LastError))
	}
}
