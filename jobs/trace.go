package jobs

// Tracing River's jobs (with tracing on only): each job worked is a span
// (rivercontrib/otelriver, "river.work/<kind>") whose trace starts with a
// link to the span that inserted the job, found in the job's metadata
// (W3C traceparent). The link, not a parent: a job runs seconds or days
// after its cause, and retries; one trace per attempt, each linked back.

import (
	"context"
	"encoding/json"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceparent is the metadata key otelriver reads a job's cause from.
const traceparent = "traceparent"

// TraceMetadata is job metadata naming sc as the job's cause: what an
// insert that carries many causes at once (ingest's group commit) sets on
// each job, so that each delivery links to the webhook that raised its
// alert rather than to the batch. Nil when sc is not valid.
func TraceMetadata(sc trace.SpanContext) []byte {
	if !sc.IsValid() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	b, _ := json.Marshal(carrier)
	return b
}

// traceInserts writes the inserting span's trace context into the metadata
// of each job inserted under it, unless the job names its cause already
// (TraceMetadata).
type traceInserts struct{ river.MiddlewareDefaults }

func (*traceInserts) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return doInner(ctx)
	}
	var own []byte
	for _, p := range params {
		var meta map[string]any
		if len(p.Metadata) > 0 && json.Unmarshal(p.Metadata, &meta) != nil {
			continue // not ours to rewrite
		}
		if _, named := meta[traceparent]; named {
			continue
		}
		if len(meta) == 0 {
			if own == nil {
				own = TraceMetadata(sc)
			}
			p.Metadata = own
			continue
		}
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		for k, v := range carrier {
			meta[k] = v
		}
		p.Metadata, _ = json.Marshal(meta)
	}
	return doInner(ctx)
}

// workSpans is otelriver's work span alone: its insert side would replace
// the cause a job names (TraceMetadata) with the inserting batch.
type workSpans struct {
	river.MiddlewareDefaults
	m *otelriver.Middleware
}

func (w *workSpans) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	return w.m.Work(ctx, job, doInner)
}

// middleware is the River middleware for tp: none when tracing is off.
func middleware(tp trace.TracerProvider, work bool) []rivertype.Middleware {
	if tp == nil {
		return nil
	}
	out := []rivertype.Middleware{&traceInserts{}}
	if work {
		out = append(out, &workSpans{m: otelriver.NewMiddleware(&otelriver.MiddlewareConfig{
			TracerProvider: tp, MeterProvider: noop.NewMeterProvider(),
			EnableTracePropagation: true, EnableWorkSpanJobKindSuffix: true,
		})})
	}
	return out
}
