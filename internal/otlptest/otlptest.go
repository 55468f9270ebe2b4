// Package otlptest is a test kit: a local OTLP/HTTP receiver (an OpenTelemetry
// collector's traces endpoint, POST /v1/traces, protobuf or JSON, gzip or
// not) that keeps every span it is sent, decoded, and the bytes of every
// request, for tests to search (the PIN proof) and to walk (span trees).
package otlptest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, its ids in hex.
type Span struct {
	TraceID, SpanID, ParentSpanID string
	Name, Kind                    string
	Attrs                         map[string]string
	Links                         []Link
	Events                        []string
	Status                        string
	Resource                      map[string]string
	Scope                         string
	Start, End                    time.Time
}

// Link is one of a span's links.
type Link struct {
	TraceID, SpanID string
	Attrs           map[string]string
}

// Receiver is a running receiver.
type Receiver struct {
	srv *httptest.Server

	mu    sync.Mutex
	spans []Span
	raw   [][]byte
	bad   []string
}

// Start starts a receiver, closed when the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the receiver's base URL: OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *Receiver) URL() string { return r.srv.URL }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err == nil && req.Header.Get("Content-Encoding") == "gzip" {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
			body, err = io.ReadAll(zr)
		}
	}
	var msg coltrace.ExportTraceServiceRequest
	switch {
	case err != nil:
	case req.URL.Path != "/v1/traces" || req.Method != http.MethodPost:
		err = fmt.Errorf("%s %s: not the traces endpoint", req.Method, req.URL.Path)
	case strings.HasPrefix(req.Header.Get("Content-Type"), "application/json"):
		err = protojson.Unmarshal(body, &msg)
	default:
		err = proto.Unmarshal(body, &msg)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw = append(r.raw, body)
	if err != nil {
		r.bad = append(r.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, rs := range msg.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind().String(),
					Attrs: attrs(s.GetAttributes()), Status: s.GetStatus().GetCode().String(), Resource: res,
					Scope: ss.GetScope().GetName(),
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano()))}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId()),
						Attrs: attrs(l.GetAttributes())})
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, e.GetName())
				}
				r.spans = append(r.spans, sp)
			}
		}
	}
	w.Header().Set("Content-Type", req.Header.Get("Content-Type"))
	w.WriteHeader(http.StatusOK)
	if b, err := proto.Marshal(&coltrace.ExportTraceServiceResponse{}); err == nil && !strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		_, _ = w.Write(b)
	} else {
		_, _ = w.Write([]byte("{}"))
	}
}

// attrs flattens attributes to text (arrays as their values joined by ",").
func attrs(kvs []*common.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = value(kv.GetValue())
	}
	return out
}

func value(v *common.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *common.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *common.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *common.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, value(e))
		}
		return strings.Join(parts, ",")
	case *common.AnyValue_BytesValue:
		return string(x.BytesValue)
	}
	return ""
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Raw returns the bytes of every request received so far (uncompressed).
func (r *Receiver) Raw() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.raw...)
}

// Problems lists the requests that were not OTLP traces.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// WaitFor waits until some received span satisfies match, and returns it.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, match func(Span) bool) Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range r.Spans() {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("otlptest: no span %s after %s; received:\n%s", what, timeout, Describe(r.Spans()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Describe lists spans one a line, by trace, for a failure message.
func Describe(spans []Span) string {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].TraceID < spans[j].TraceID })
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s %s parent=%s %q links=%d\n", s.TraceID[:8], s.SpanID, s.ParentSpanID, s.Name, len(s.Links))
	}
	return b.String()
}
