// Package telemetry is codewatch's OpenTelemetry tracing: off unless the
// standard OTEL_* variables ask for it, and then spans exported over OTLP
// (http/protobuf by default) through the contrib autoexport package, which
// reads the protocol, endpoint, headers, sampler and resource variables the
// way every OpenTelemetry SDK does. With tracing off, Setup returns nil and
// nothing is wrapped or installed anywhere: the service runs exactly as it
// did before tracing existed.
//
// No global is set (otel.SetTracerProvider is never called): the tracer
// provider and propagator are handed to what traces, explicitly.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ServiceName is service.name unless OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const ServiceName = "codewatch"

// Telemetry is tracing switched on: the tracer provider everything traces
// with, and the propagator of trace context across processes (W3C Trace
// Context) and into job metadata.
type Telemetry struct {
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	shutdown   func(context.Context) error
}

// Enabled reports whether the standard variables switch tracing on: an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
// or a traces exporter named in OTEL_TRACES_EXPORTER other than none; and
// not OTEL_SDK_DISABLED=true.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if exp == "none" {
		return false
	}
	return exp != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup returns tracing as the environment configures it, or nil when it is
// off (Enabled). getenv decides on or off; the exporter, sampler and
// resource then read the process's environment (the same in production), as
// the OpenTelemetry SDK does.
func Setup(ctx context.Context, getenv func(string) string, version string) (*Telemetry, error) {
	if !Enabled(getenv) {
		return nil, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("OpenTelemetry: %w", err)
	}
	if autoexport.IsNoneSpanExporter(exp) {
		return nil, nil
	}
	res, err := Resource(ctx, version)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	// The batch processor reads OTEL_BSP_*; the provider reads
	// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (parentbased_always_on
	// by default).
	return New(sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))), nil
}

// Resource is codewatch's resource: service.name codewatch and its version,
// overridden by OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
func Resource(ctx context.Context, version string) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", ServiceName)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	// A partial resource (an attribute OTEL_RESOURCE_ATTRIBUTES could not
	// parse) still names the service.
	return res, nil
}

// New is tracing with the given provider (tests pass one with an in-memory
// exporter). An *sdktrace.TracerProvider is flushed and shut down by
// Shutdown.
func New(tp trace.TracerProvider) *Telemetry {
	t := &Telemetry{Tracer: tp, Propagator: propagation.TraceContext{}}
	if sdk, ok := tp.(*sdktrace.TracerProvider); ok {
		t.shutdown = sdk.Shutdown
	}
	return t
}

// Shutdown exports the spans still buffered and stops exporting, within
// ctx (at most 5 s). Nil-safe.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := t.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("OpenTelemetry: flushing spans: %w", err)
	}
	return nil
}

// TracerProvider is t's provider, or nil when t is (tracing off): what the
// packages that trace take.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t == nil {
		return nil
	}
	return t.Tracer
}
