package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/codewatch/codewatch/telemetry"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// Off unless the standard variables ask for it; OTEL_SDK_DISABLED and the
// none exporter win.
func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, false},
	} {
		if got := telemetry.Enabled(env(c.env)); got != c.want {
			t.Errorf("Enabled(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}

// With tracing off Setup builds nothing, and a nil *Telemetry is safe.
func TestSetupOff(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), env(nil), "v1")
	if err != nil || tel != nil {
		t.Fatalf("Setup with no variables: %v %v", tel, err)
	}
	if tel.TracerProvider() != nil || tel.Shutdown(context.Background()) != nil {
		t.Fatal("a nil Telemetry is not inert")
	}
}

// Lines logged inside a span carry its ids as top-level keys; others not.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	ctx, span := tp.Tracer("t").Start(context.Background(), "work")
	logger.InfoContext(ctx, "inside", "sink", "log")
	span.End()
	logger.Info("outside")
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	sc := span.SpanContext()
	if lines[0]["trace_id"] != sc.TraceID().String() || lines[0]["span_id"] != sc.SpanID().String() || lines[0]["component"] != "test" {
		t.Errorf("inside a span: %v", lines[0])
	}
	if _, ok := lines[1]["trace_id"]; ok {
		t.Errorf("outside a span: %v", lines[1])
	}
}

func TestRedacted(t *testing.T) {
	u, _ := url.Parse("https://hooks.slack.com/services/T0/B0/secret?x=1")
	if got := telemetry.Redacted(u); got != "https://hooks.slack.com/REDACTED" {
		t.Errorf("Redacted: %s", got)
	}
}
