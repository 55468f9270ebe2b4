package main

// Tracing's wiring (issue 24): with OTEL_EXPORTER_OTLP_ENDPOINT (or the
// traces endpoint) set, serve traces both listeners, the store's
// statements, ingest, River's jobs and the calls to Seam's API and to alert
// sinks; with it unset none of this is installed (telemetry.Setup returns
// nil and every function here leaves its argument as it is). Also River's
// job UI for the console, and the metrics every series of which is made
// at start-up.

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/internal/quietlog"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/telemetry"
	"github.com/codewatch/codewatch/verify"
)

// Option changes how Open builds the App.
type Option func(*App)

// withTelemetry traces the App with tel (nil: tracing off).
func withTelemetry(tel *telemetry.Telemetry) Option { return func(a *App) { a.tel = tel } }

// setupTelemetry starts tracing when the environment asks for it, and then
// makes logger's lines inside a span carry its trace_id and span_id.
func setupTelemetry(ctx context.Context, getenv func(string) string, logger *slog.Logger) (*telemetry.Telemetry, *slog.Logger, error) {
	tel, err := telemetry.Setup(ctx, getenv, moduleVersion())
	if err != nil || tel == nil {
		return nil, logger, err
	}
	logger = slog.New(telemetry.LogHandler(logger.Handler()))
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	logger.Info("tracing on: spans exported with OpenTelemetry", "endpoint", endpointHost(endpoint),
		"protocol", cmpOr(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "http/protobuf"),
		"sampler", cmpOr(getenv("OTEL_TRACES_SAMPLER"), "parentbased_always_on"))
	return tel, logger, nil
}

// endpointHost keeps only the scheme and host of an endpoint: its path or
// query could hold a credential.
func endpointHost(e string) string {
	if i := strings.Index(e, "://"); i >= 0 {
		if j := strings.IndexAny(e[i+3:], "/?#"); j >= 0 {
			return e[:i+3+j]
		}
	}
	return e
}

func cmpOr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// moduleVersion is service.version: the module's version, or the commit.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return ""
}

// tracePool makes the pool's statements database spans.
func tracePool(cfg *pgxpool.Config, tel *telemetry.Telemetry) {
	if tel != nil {
		cfg.ConnConfig.Tracer = postgres.Tracer(tel.Tracer)
	}
}

// traceHandler wraps a listener's router in server spans named by route.
func traceHandler(e *echo.Echo, tel *telemetry.Telemetry, public bool) http.Handler {
	if tel == nil {
		return e
	}
	handlers.TraceRoutes(e)
	return tel.Handler(e, public)
}

// sinkClient is the alert sinks' HTTP client: client spans whose url.full
// shows the sink's host only (a Slack webhook's URL is its secret).
func sinkClient(tel *telemetry.Telemetry) *http.Client {
	c := &http.Client{Timeout: 10 * time.Second}
	if tel != nil {
		c.Transport = tel.Transport(nil, func(*http.Request) string { return "alert sink" }, true)
	}
	return c
}

// seamClient adds to Seam's client configuration its metrics and, with
// tracing on, a client span per attempt named by route.
func seamClient(c seam.Config, m *metrics.Metrics, tel *telemetry.Telemetry) seam.Config {
	if m != nil {
		c.OnAttempt = func(route, outcome string, took time.Duration) {
			m.SeamRequests.WithLabelValues(route, outcome).Inc()
			m.SeamDuration.WithLabelValues(route, outcome).Observe(took.Seconds())
		}
	}
	if tel != nil {
		hc := &http.Client{}
		if c.HTTPClient != nil {
			*hc = *c.HTTPClient
		}
		hc.Transport = tel.Transport(hc.Transport, func(r *http.Request) string {
			return strings.TrimPrefix(r.URL.Path, "/")
		}, false)
		c.HTTPClient = hc
	}
	return c
}

// alertCounters are the delivery metrics: by sink and type (the first
// ones), and by sink and outcome.
func alertCounters(m *metrics.Metrics) alert.Counters {
	return alert.Counters{
		Sent: func(sink, typ string) {
			m.AlertsSent.WithLabelValues(sink, typ).Inc()
			m.AlertDeliveries.WithLabelValues(sink, "sent").Inc()
		},
		Failed: func(sink string) {
			m.AlertsFailed.WithLabelValues(sink).Inc()
			m.AlertDeliveries.WithLabelValues(sink, "failed").Inc()
		},
		GivenUp: func(sink string) {
			m.AlertsGivenUp.WithLabelValues(sink).Inc()
			m.AlertDeliveries.WithLabelValues(sink, "given_up").Inc()
		},
	}
}

// prepareMetrics makes every series the dashboard reads, and the job
// counts read from the database.
func prepareMetrics(m *metrics.Metrics, store *postgres.Store, sinks []alert.Sink, logger *slog.Logger) {
	reasons := make([]string, len(verify.Kinds))
	for i, k := range verify.Kinds {
		reasons[i] = string(k)
	}
	m.Prepare(metrics.Labels{Sinks: alert.SinkNames(sinks), JobKinds: jobs.Kinds(), SignatureReasons: reasons})
	m.RegisterJobs(store, jobs.Kinds(), 5*time.Second, logger)
}

// jobsUI is River's job UI for the console (under /console/jobs/). Its
// background counts start with its first request, so that a replica whose
// jobs page nobody opens runs none of its queries; stop ends them.
func jobsUI(client *river.Client[pgx.Tx], logger *slog.Logger) (h http.Handler, stop func(), err error) {
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    quietlog.Warn(logger),
		Prefix:    "/console/jobs",
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			if err := ui.Start(ctx); err != nil {
				logger.Warn("River UI: background counts not started", "error", err)
			}
		})
		ui.ServeHTTP(w, r)
	}), cancel, nil
}
