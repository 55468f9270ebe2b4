package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// The span tree of a webhook that raises an alert, with the SDK's in-memory
// exporter (issue 24): its ingest span is the request's child, the batch
// transaction's statements are database spans under the batch (named by
// statement, no value in any attribute), and the alert's delivery jobs name
// that webhook's ingest span as their cause in their metadata (otelriver
// starts each job's trace with a link to it).
func TestIngestSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	cfg, err := pgxpool.ParseConfig(pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = postgres.Tracer(tp)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	inserter, err := jobs.NewTracedInserter(pool, nil, tp)
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pool, inserter, postgres.Config{Keys: storetest.Keys(t), RemovalTimeout: time.Hour, Tracer: tp})
	store.Start()
	t.Cleanup(store.Close)

	code, pin := seamevent.NewID(), "58273641"
	base := time.Now().Add(-time.Minute)
	var failing string // the server span of the webhook that raises the alert
	for i, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove} {
		body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, Code: pin, OccurredAt: base.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, req := tp.Tracer("test").Start(context.Background(), "POST /webhooks/seam")
		res, err := store.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body})
		req.End()
		if err != nil || res.Outcome != lifecycle.Stored {
			t.Fatalf("%s: %v %v", typ, res.Outcome, err)
		}
		failing = req.SpanContext().SpanID().String()
	}
	spans := exp.GetSpans()
	byID := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID().String()] = s
	}
	var ingest tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "ingest" && s.Parent.SpanID().String() == failing {
			ingest = s
		}
		for _, a := range s.Attributes {
			if v := a.Value.Emit(); strings.Contains(v, pin) || strings.Contains(v, code) {
				t.Errorf("span %q attribute %s = %q: a value", s.Name, a.Key, v)
			}
		}
	}
	if ingest.Name == "" {
		t.Fatalf("no ingest span under the failing webhook's request; spans: %v", names(spans))
	}
	if len(ingest.Links) != 1 {
		t.Errorf("the ingest span links to %d batches, want 1", len(ingest.Links))
	}
	// The batch's span ends after the ingest it answered returned (the
	// worker answers on commit, then ends it): wait for it to be exported.
	batchID := ingest.Links[0].SpanContext.SpanID().String()
	batch, ok := byID[batchID]
	for deadline := time.Now().Add(10 * time.Second); !ok && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		spans = exp.GetSpans()
		for _, s := range spans {
			byID[s.SpanContext.SpanID().String()] = s
		}
		batch, ok = byID[batchID]
	}
	if !ok || batch.Name != "ingest batch" {
		t.Fatalf("the ingest span's link is not to its batch: %+v", batch)
	}
	var statements []string
	for _, s := range spans {
		if s.Parent.SpanID() == batch.SpanContext.SpanID() {
			statements = append(statements, s.Name)
			if !hasAttr(s, "db.system", "postgresql") {
				t.Errorf("statement span %q without db.system postgresql", s.Name)
			}
		}
	}
	if len(statements) == 0 {
		t.Errorf("the batch has no statement spans; spans: %v", names(spans))
	}
	// The delivery jobs' cause: the failing webhook's ingest span.
	rows, err := pool.Query(context.Background(), `SELECT metadata FROM river_job WHERE kind = 'deliver_alert'`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var meta map[string]string
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(raw, &meta)
		want := "00-" + ingest.SpanContext.TraceID().String() + "-" + ingest.SpanContext.SpanID().String() + "-01"
		if meta["traceparent"] != want {
			t.Errorf("delivery job's traceparent %q, want the failing webhook's ingest span %q", meta["traceparent"], want)
		}
		n++
	}
	if rows.Err() != nil || n == 0 {
		t.Fatalf("%d delivery jobs (%v)", n, rows.Err())
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}
