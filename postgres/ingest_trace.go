package postgres

// Tracing ingest (with tracing on only). Deliveries are committed in shared
// transactions (group commit), so one transaction serves many traces:
//
//   - each delivery has an "ingest" span, in its request's trace, from
//     Ingest's call to its reply; it links to the transaction that
//     committed it;
//   - each transaction has an "ingest batch" span: a child of the first
//     traced delivery's span, linked to every other one; its statements are
//     its children;
//   - each alert the transaction raises names, as its delivery jobs' cause,
//     the ingest span of a delivery about that code (withCauses), not the
//     batch: a webhook's trace leads to the alert it raised.

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// traceIngest starts r's ingest span; end ends it with the reply.
func (s *Store) traceIngest(ctx context.Context, r *request) (context.Context, func(reply)) {
	ctx, span := s.tracer.Start(ctx, "ingest", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("codewatch.source", sourceOf(r))))
	r.span = span.SpanContext()
	return ctx, func(rep reply) {
		if rep.batch.IsValid() {
			span.AddLink(trace.Link{SpanContext: rep.batch, Attributes: []attribute.KeyValue{
				attribute.String("codewatch.link", "committed by")}})
		}
		if rep.err == nil {
			span.SetAttributes(attribute.String("codewatch.outcome", string(rep.res.Outcome)))
			if rep.res.EventType != "" {
				span.SetAttributes(attribute.String("codewatch.event_type", rep.res.EventType))
			}
		}
		endSpan(span, rep.err)
	}
}

func sourceOf(r *request) string {
	if r.d.Source != "" {
		return r.d.Source
	}
	return "webhook"
}

// traceBatch starts a batch transaction's span: the child of its first
// traced delivery, linked to the others.
func (s *Store) traceBatch(ctx context.Context, batch []*request) (context.Context, trace.Span) {
	var parent trace.SpanContext
	var links []trace.Link
	for _, r := range batch {
		switch {
		case !r.span.IsValid():
		case !parent.IsValid():
			parent = r.span
		default:
			links = append(links, trace.Link{SpanContext: r.span})
		}
	}
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	return s.tracer.Start(ctx, "ingest batch", trace.WithSpanKind(trace.SpanKindInternal), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("codewatch.batch.size", len(batch))))
}

// endSpan ends span, failed when err is set. An error's text can quote
// anything (Postgres quotes values): only its kind is recorded.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetAttributes(attribute.String("error.type", errorKind(err)))
		span.SetStatus(codes.Error, errorKind(err))
	}
	span.End()
}

func errorKind(err error) string {
	if c := sqlState(err); c != "" {
		return c
	}
	return "unavailable"
}

// causesKey holds, in a batch transaction's context, the ingest span of a
// delivery about each access code the batch touches.
type causesKey struct{}

// withCauses returns ctx with the batch's causes, when any delivery is
// traced.
func withCauses(ctx context.Context, batch []*request) context.Context {
	var m map[string]trace.SpanContext
	for _, r := range batch {
		if !r.span.IsValid() || r.parsed.AccessCodeID == "" {
			continue
		}
		if m == nil {
			m = map[string]trace.SpanContext{}
		}
		if _, ok := m[r.parsed.AccessCodeID]; !ok {
			m[r.parsed.AccessCodeID] = r.span
		}
	}
	if m == nil {
		return ctx
	}
	return context.WithValue(ctx, causesKey{}, m)
}

// causeOf is the span that caused an alert about code, when ctx knows one
// (a batch's delivery about that code); the zero value otherwise, and the
// jobs then name the span of ctx.
func causeOf(ctx context.Context, code string) trace.SpanContext {
	m, _ := ctx.Value(causesKey{}).(map[string]trace.SpanContext)
	return m[code]
}
