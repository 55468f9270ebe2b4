package main

// Issue 24's end-to-end proof: `codewatch serve`, with only the standard
// OTEL_* variables set, exports its spans over OTLP/HTTP (protobuf) to a
// receiver the test runs; a webhook's trace leads (by a span link) to the
// delivery job of the alert it raised and that job's call to the sink; a
// delete request's trace leads to its follow job and the calls to Seam's
// API; and nothing exported holds a PIN or a secret.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/otlptest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/seamtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// traceEnv points env's service at receiver, exporting at once.
func traceEnv(env serveEnv, receiver *otlptest.Receiver) {
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.URL()
	env["OTEL_BSP_SCHEDULE_DELAY"] = "100" // ms: spans reach the receiver within the test's waits
}

func TestTracesReachOTLPReceiver(t *testing.T) {
	t.Parallel()
	receiver := otlptest.Start(t)
	fake := seamtest.Start(t)
	sink := newRawSink(t)
	env := newServeEnv(t, pgtest.NewURL(t))
	for k, v := range seamEnvFor(fake) {
		env[k] = v
	}
	env["CODEWATCH_RECONCILE_AFTER"] = "0"
	alertSecret := newWebhookSecret()
	env["CODEWATCH_ALERT_WEBHOOK_URL"] = sink.srv.URL + "/alerts"
	env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = alertSecret
	env["CODEWATCH_SLACK_WEBHOOK_URL"] = sink.srv.URL + "/services/T0/B0/slacksecretpath"
	traceEnv(env, receiver)
	s := startServer(t, "serve", env)
	if len(s.logsWithMsg("tracing on: spans exported with OpenTelemetry")) != 1 {
		t.Errorf("serve did not say tracing is on:\n%s", s.logs())
	}
	sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret}

	// A webhook that raises an alert at once: the code deleted, its removal
	// from the lock failed.
	code := seamevent.NewID()
	now := time.Now().Add(-time.Minute)
	send := func(body []byte) {
		t.Helper()
		rep, err := sender.Send(context.Background(), seamevent.NewMessageID(), body)
		if err != nil || rep.Status != http.StatusOK {
			t.Fatalf("send: %v %d %s", err, rep.Status, rep.Body)
		}
	}
	send(proofEvent(t, lifecycle.TypeSetOnDevice, code, now, nil))
	send(proofEvent(t, lifecycle.TypeDeleted, code, now.Add(time.Second), nil))
	send(proofEvent(t, lifecycle.TypeFailedToRemove, code, now.Add(2*time.Second), map[string]any{"code": proofPIN}))

	within := 30 * time.Second
	isJob := func(kind string) func(otlptest.Span) bool {
		return func(s otlptest.Span) bool { return s.Name == "river.work/"+kind }
	}
	// The delivery job of each sink, each a trace of its own linked to the
	// ingest span of the webhook that raised the alert.
	var delivery otlptest.Span
	var ingest otlptest.Span
	receiver.WaitFor(t, within, "of an alert delivery linked to a webhook's ingest span", func(sp otlptest.Span) bool {
		if !isJob("deliver_alert")(sp) || len(sp.Links) == 0 {
			return false
		}
		for _, l := range sp.Links {
			for _, in := range receiver.Spans() {
				if in.SpanID == l.SpanID && in.TraceID == l.TraceID && in.Name == "ingest" {
					delivery, ingest = sp, in
					return true
				}
			}
		}
		return false
	})
	spans := receiver.Spans()
	byID := map[string]otlptest.Span{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	// The ingest span is a child of the webhook's server span, named by its
	// route.
	// (Waited for: the server span ends after the ingest span, and may be
	// exported in a later batch.)
	srv := receiver.WaitFor(t, within, "the ingest span's parent", func(sp otlptest.Span) bool { return sp.SpanID == ingest.ParentSpanID })
	if srv.Name != "POST /webhooks/seam" || srv.Kind != "SPAN_KIND_SERVER" || srv.Attrs["http.route"] != "/webhooks/seam" ||
		srv.Attrs["http.request.method"] != "POST" || srv.Attrs["http.response.status_code"] != "200" {
		t.Errorf("the ingest span's parent is not the webhook's server span: %+v\n%s", srv, otlptest.Describe(spans))
	}
	if srv.TraceID != ingest.TraceID || delivery.TraceID == ingest.TraceID {
		t.Errorf("traces: webhook %s, ingest %s, delivery %s: the delivery must start its own trace, linked", srv.TraceID, ingest.TraceID, delivery.TraceID)
	}
	if srv.Resource["service.name"] != "codewatch" {
		t.Errorf("service.name %q", srv.Resource["service.name"])
	}
	// The ingest's statements are database spans, by statement, never
	// their values.
	db := receiver.WaitFor(t, within, "a database span in an ingest trace", func(sp otlptest.Span) bool {
		return sp.TraceID == ingest.TraceID && sp.Attrs["db.system"] == "postgresql"
	})
	if db.Attrs["db.query.summary"] == "" || db.Attrs["db.query.text"] != "" || strings.Contains(db.Name, "$1") {
		t.Errorf("database span: %q %v", db.Name, db.Attrs)
	}
	// The delivery's call to the webhook sink: a client span in the job's
	// trace; the Slack sink's URL (its secret) is not in its span.
	receiver.WaitFor(t, within, "the alert sink's client span in a delivery's trace", func(sp otlptest.Span) bool {
		j, ok := byIDNow(receiver)[sp.ParentSpanID]
		return ok && j.Name == "river.work/deliver_alert" && sp.Kind == "SPAN_KIND_CLIENT" && sp.Name == "POST alert sink"
	})
	// Its log line, in the job's span.
	waitFor(t, within, "alert delivered logged with the job's trace", func() bool {
		for _, r := range s.logsWithMsg("alert delivered") {
			if r["access_code_id"] == code && r["trace_id"] != nil && r["span_id"] != nil {
				return true
			}
		}
		return false
	})
	// Each such line's trace is a delivery job's. A job's span is exported
	// after its line is logged (the batch processor sends it when it ends,
	// and later): wait for it rather than reading the spans received so far.
	for _, r := range s.logsWithMsg("alert delivered") {
		id, _ := r["trace_id"].(string)
		waitFor(t, within, fmt.Sprintf("a delivery job's span in trace %s, which an alert delivered line names", id), func() bool {
			for _, sp := range receiver.Spans() {
				if sp.Name == "river.work/deliver_alert" && sp.TraceID == id {
					return true
				}
			}
			return false
		})
	}

	// A delete request: its trace calls Seam's API; its follow job links
	// back to it and looks the attempt up.
	seamCode, err := fake.CreateAccessCode(context.Background(), fake.Devices[0], "4821")
	if err != nil {
		t.Fatal(err)
	}
	var out json.RawMessage
	if st := s.api(http.MethodPost, "/v1/access_codes/"+seamCode+"/delete", s.Token, map[string]string{}, &out); st != http.StatusAccepted {
		t.Fatalf("delete: %d %s", st, out)
	}
	del := receiver.WaitFor(t, within, "the delete request's server span", func(sp otlptest.Span) bool {
		return sp.Name == "POST /v1/access_codes/:access_code_id/delete"
	})
	if del.Attrs["http.route"] != "/v1/access_codes/:access_code_id/delete" {
		t.Errorf("delete span: %v", del.Attrs)
	}
	receiver.WaitFor(t, within, "Seam's access_codes/delete called in the delete request's trace", func(sp otlptest.Span) bool {
		return sp.TraceID == del.TraceID && sp.Kind == "SPAN_KIND_CLIENT" && sp.Name == "POST access_codes/delete"
	})
	follow := receiver.WaitFor(t, within, "the follow job linked to the delete request", func(sp otlptest.Span) bool {
		if !isJob("follow_action_attempt")(sp) {
			return false
		}
		for _, l := range sp.Links {
			if l.TraceID == del.TraceID {
				return true
			}
		}
		return false
	})
	receiver.WaitFor(t, within, "the follow job's lookup of the attempt", func(sp otlptest.Span) bool {
		return sp.TraceID == follow.TraceID && sp.Kind == "SPAN_KIND_CLIENT" && sp.Name == "POST action_attempts/get"
	})

	if code, _ := s.stop(15 * time.Second); code != 0 {
		t.Errorf("serve exited %d", code)
	}
	// Every span is named by its route or operation, never with an id.
	spans = receiver.Spans()
	for _, sp := range spans {
		if strings.Contains(sp.Name, code) || strings.Contains(sp.Name, seamCode) {
			t.Errorf("span named with an id: %q", sp.Name)
		}
	}
	if p := receiver.Problems(); len(p) > 0 {
		t.Errorf("the receiver got requests that are not OTLP traces: %v", p)
	}
	// Nothing exported holds the PIN, a secret or a token.
	raw := bytes.Join(receiver.Raw(), nil)
	if leaks := pinLeaks(raw); len(leaks) > 0 {
		t.Errorf("the spans show the PIN %s", strings.Join(leaks, ", "))
	}
	for what, secret := range map[string]string{
		"the webhook secret": strings.TrimPrefix(s.Secret, "whsec_"), "the alert webhook secret": strings.TrimPrefix(alertSecret, "whsec_"),
		"the ops token": s.Token, "the Seam API key": env["SEAM_API_KEY"], "the data key": env["CODEWATCH_DATA_KEYS"],
		"the Slack webhook's path": "slacksecretpath",
	} {
		if secret != "" && bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the spans show %s", what)
		}
	}
	t.Logf("%d spans received, %d bytes", len(spans), len(raw))
}

func byIDNow(r *otlptest.Receiver) map[string]otlptest.Span {
	out := map[string]otlptest.Span{}
	for _, sp := range r.Spans() {
		out[sp.SpanID] = sp
	}
	return out
}
