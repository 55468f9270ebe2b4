package telemetry

import (
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// Handler wraps a listener's handler in a server span per request, with the
// stable HTTP semantic conventions. The span is named by the method until
// the router names it by its route (handlers names it "POST
// /webhooks/seam", never with an id). A public listener does not take its
// parent from the caller's traceparent (anyone on the internet could choose
// our traces and their sampling): it starts a trace of its own, linked to
// the caller's.
func (t *Telemetry) Handler(h http.Handler, public bool) http.Handler {
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(t.Tracer),
		otelhttp.WithPropagators(t.Propagator),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()), // Prometheus has the metrics
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	}
	if public {
		opts = append(opts, otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }))
	}
	return otelhttp.NewHandler(h, "codewatch", opts...)
}

// Transport wraps base (nil: http.DefaultTransport) in a client span per
// request: calls to Seam's API and to alert sinks. name names the span after
// the method (e.g. "POST access_codes/get"); redact, when set, replaces
// url.full with the scheme and host only, for URLs that are themselves
// secrets (a Slack incoming webhook's path is its credential).
func (t *Telemetry) Transport(base http.RoundTripper, name func(*http.Request) string, redact bool) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if redact {
		base = redactURL{base}
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(t.Tracer),
		otelhttp.WithPropagators(t.Propagator),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if name == nil {
				return r.Method
			}
			return r.Method + " " + name(r)
		}))
}

// redactURL overwrites the client span's url.full (set by otelhttp when the
// span starts, from the whole URL) with the scheme and host alone.
type redactURL struct{ base http.RoundTripper }

func (r redactURL) RoundTrip(req *http.Request) (*http.Response, error) {
	trace.SpanFromContext(req.Context()).SetAttributes(attribute.String("url.full", Redacted(req.URL)))
	return r.base.RoundTrip(req)
}

// Redacted is u's scheme and host, its path and query replaced.
func Redacted(u *url.URL) string {
	if u == nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/REDACTED"}).String()
}
