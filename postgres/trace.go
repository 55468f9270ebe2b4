package postgres

// Database spans: a pgx tracer that records a client span per statement (and
// one per batch, its statements as events), named by what the statement does
// ("SELECT alert_deliveries", "BATCH INSERT events"), never by its text's
// values: a span carries the operation, the table, the Store method that ran
// it, rows and SQLSTATE, and never a parameter, a body or an error's
// message (Postgres quotes values in some). Statements outside any span
// (River's polling, its completer) make no span: only work someone traces is
// traced. Installed only with tracing on (cmd/codewatch sets the pool's
// ConnConfig.Tracer); otherwise pgx calls nothing.

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of codewatch's own spans.
const tracerName = "github.com/codewatch/codewatch"

// Tracer returns the pgx tracer (statements, batches, COPY) that records
// database spans with tp.
func Tracer(tp trace.TracerProvider) pgx.QueryTracer {
	return &dbTracer{tr: tp.Tracer(tracerName + "/postgres")}
}

type dbTracer struct{ tr trace.Tracer }

// spanKey holds the span this tracer started, so that its end never ends a
// caller's span (pgx calls the end whether or not the start made one).
type spanKey struct{}

var dbSystem = []attribute.KeyValue{
	attribute.String("db.system", "postgresql"),
	attribute.String("db.system.name", "postgresql"),
}

func (t *dbTracer) start(ctx context.Context, conn *pgx.Conn, name string, attrs ...attribute.KeyValue) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	attrs = append(append(attrs, dbSystem...), attribute.String("db.query.summary", name))
	if conn != nil {
		attrs = append(attrs, attribute.String("db.namespace", conn.Config().Database))
	}
	if fn := caller(); fn != "" {
		attrs = append(attrs, attribute.String("code.function.name", fn))
	}
	ctx, span := t.tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, spanKey{}, span)
}

func (t *dbTracer) end(ctx context.Context, tag pgconn.CommandTag, err error, attrs ...attribute.KeyValue) {
	span, ok := ctx.Value(spanKey{}).(trace.Span)
	if !ok {
		return
	}
	if err == nil {
		attrs = append(attrs, attribute.Int64("db.response.returned_rows", tag.RowsAffected()))
	}
	span.SetAttributes(attrs...)
	failed(span, err)
	span.End()
}

// failed marks span failed by err, by its SQLSTATE or its kind alone.
func failed(span trace.Span, err error) {
	if err == nil {
		return
	}
	var pg *pgconn.PgError
	kind := "error"
	switch {
	case errors.As(err, &pg):
		kind = pg.Code
		span.SetAttributes(attribute.String("db.response.status_code", pg.Code))
	case errors.Is(err, context.Canceled):
		kind = "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	case pgconn.SafeToRetry(err), pgconn.Timeout(err):
		kind = "connection"
	}
	span.SetAttributes(attribute.String("error.type", kind))
	span.SetStatus(codes.Error, kind)
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *dbTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s := summarize(d.SQL)
	return t.start(ctx, conn, s.name, attribute.String("db.operation.name", s.op), attribute.String("db.collection.name", s.table))
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *dbTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	t.end(ctx, d.CommandTag, d.Err)
}

// TraceBatchStart implements pgx.BatchTracer: one span for the batch, named
// by its first statement that is not BEGIN.
func (t *dbTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() || d.Batch == nil {
		return ctx
	}
	first := ""
	var all []string
	for _, q := range d.Batch.QueuedQueries {
		s := summarize(q.SQL)
		if first == "" && s.op != "BEGIN" {
			first = s.name
		}
		if len(all) < 20 && !contains(all, s.name) {
			all = append(all, s.name)
		}
	}
	ctx = t.start(ctx, conn, strings.TrimSpace("BATCH "+first),
		attribute.String("db.operation.name", "BATCH"),
		attribute.Int("db.operation.batch.size", len(d.Batch.QueuedQueries)),
		attribute.StringSlice("codewatch.db.statements", all))
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer: each statement's result is an
// event of the batch's span.
func (t *dbTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	span, ok := ctx.Value(spanKey{}).(trace.Span)
	if !ok {
		return
	}
	attrs := []attribute.KeyValue{attribute.Int64("db.response.returned_rows", d.CommandTag.RowsAffected())}
	var pg *pgconn.PgError
	if errors.As(d.Err, &pg) {
		attrs = append(attrs, attribute.String("db.response.status_code", pg.Code))
	}
	span.AddEvent(summarize(d.SQL).name, trace.WithAttributes(attrs...))
}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *dbTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	span, ok := ctx.Value(spanKey{}).(trace.Span)
	if !ok {
		return
	}
	failed(span, d.Err)
	span.End()
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *dbTracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	table := ""
	if len(d.TableName) > 0 {
		table = d.TableName[len(d.TableName)-1]
	}
	return t.start(ctx, conn, "COPY "+table, attribute.String("db.operation.name", "COPY"), attribute.String("db.collection.name", table))
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *dbTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	t.end(ctx, d.CommandTag, d.Err)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// caller names the codewatch function that ran the statement, past pgx, River
// and the transaction helpers: "postgres.(*Store).Delivery".
func caller() string {
	var pcs [32]uintptr
	n := runtime.Callers(4, pcs[:])
	frames := runtime.CallersFrames(pcs[:n])
	const mod = "github.com/codewatch/codewatch/"
	for {
		f, more := frames.Next()
		if fn, ok := strings.CutPrefix(f.Function, mod); ok && !helper(fn) {
			return fn
		}
		if !more {
			return ""
		}
	}
}

// helper reports the functions every statement passes through, which name
// no statement of their own.
func helper(fn string) bool {
	return strings.HasPrefix(fn, "postgres.(*pipeTx)") || strings.HasPrefix(fn, "postgres.(*dbTracer)") ||
		fn == "postgres.queryIDs" || strings.HasPrefix(fn, "postgres.(*Store).runTx") || strings.HasPrefix(fn, "postgres.(*Store).inTx")
}

// statement is what a span says of a statement.
type statement struct{ op, table, name string }

// summaries caches each statement's summary: the statements are constants
// (or a few shapes of list query), so the cache stays small; it stops
// growing at maxSummaries all the same.
var (
	summaries   sync.Map
	summaryKeys atomic.Int64
)

const maxSummaries = 4096

// summarize reads a statement's operation and main table from its text.
func summarize(sql string) statement {
	if v, ok := summaries.Load(sql); ok {
		return v.(statement)
	}
	s := parseStatement(sql)
	if summaryKeys.Load() < maxSummaries {
		if _, loaded := summaries.LoadOrStore(sql, s); !loaded {
			summaryKeys.Add(1)
		}
	}
	return s
}

// parseStatement finds the operation (the first keyword, or after a WITH the
// first statement keyword outside parentheses) and its table: the name
// after FROM, INTO or UPDATE at the same level, else the first table named
// anywhere (a CTE's).
func parseStatement(sql string) statement {
	toks := sqlTokens(sql)
	if len(toks) == 0 {
		return statement{op: "SQL", name: "SQL"}
	}
	op, at := strings.ToUpper(toks[0].text), 0
	if op == "WITH" || op == "EXPLAIN" {
		for i, t := range toks[1:] {
			if u := strings.ToUpper(t.text); t.depth == 0 && isStatement(u) {
				op, at = u, i+1
				break
			}
		}
	}
	table, anywhere := "", ""
	for i := at + 1; i < len(toks)-1; i++ {
		u := strings.ToUpper(toks[i].text)
		if u != "FROM" && u != "INTO" && u != "UPDATE" && u != "JOIN" {
			continue
		}
		next := toks[i+1]
		if !identifier(next.text) {
			continue
		}
		if anywhere == "" {
			anywhere = next.text
		}
		if next.depth == toks[at].depth && table == "" && u != "JOIN" {
			table = next.text
		}
	}
	if op == "UPDATE" && at+1 < len(toks) && identifier(toks[at+1].text) {
		table = toks[at+1].text
	}
	if table == "" {
		table = anywhere
	}
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		table = table[i+1:]
	}
	table = strings.Trim(table, `"`)
	name := op
	if table != "" && isStatement(op) {
		name += " " + table
	}
	return statement{op: op, table: table, name: name}
}

func isStatement(u string) bool {
	switch u {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES":
		return true
	}
	return false
}

func identifier(s string) bool {
	if s == "" || s[0] == '(' || s[0] == '$' || s[0] == '\'' {
		return false
	}
	switch strings.ToUpper(s) {
	case "SELECT", "LATERAL", "ONLY", "UNNEST":
		return false
	}
	return true
}

type token struct {
	text  string
	depth int
}

// sqlTokens splits a statement into words and parentheses, with the depth of
// each, skipping comments and string literals (whose contents are never
// read into a span).
func sqlTokens(sql string) []token {
	var out []token
	depth := 0
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return out
			}
			i += end + 4
		case c == '\'':
			j := i + 1
			for j < len(sql) && sql[j] != '\'' {
				j++
			}
			out = append(out, token{"'", depth})
			i = j + 1
		case c == '(':
			out = append(out, token{"(", depth})
			depth++
			i++
		case c == ')':
			depth = max(0, depth-1)
			i++
		case c == '_' || c == '"' || c == '.' || c == '$' || 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9':
			j := i
			for j < len(sql) && (sql[j] == '_' || sql[j] == '"' || sql[j] == '.' || sql[j] == '$' ||
				'a' <= sql[j]|0x20 && sql[j]|0x20 <= 'z' || '0' <= sql[j] && sql[j] <= '9') {
				j++
			}
			out = append(out, token{sql[i:j], depth})
			i = j
		default:
			i++
		}
	}
	return out
}
