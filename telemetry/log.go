package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler adds trace_id and span_id, as top-level keys, to every record
// logged with a context inside a span, so that a log line leads to its trace
// and a trace to its log lines. Records logged without a context (or
// outside any span) pass through unchanged.
//
// The keys are top-level only for loggers without groups (codewatch makes
// none): a handler that has opened a group puts every later attribute in it.
func LogHandler(h slog.Handler) slog.Handler { return &logHandler{h} }

type logHandler struct{ inner slog.Handler }

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{h.inner.WithAttrs(as)}
}

func (h *logHandler) WithGroup(name string) slog.Handler { return &logHandler{h.inner.WithGroup(name)} }
