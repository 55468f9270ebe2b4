package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// Plan is EXPLAIN's plan of one statement an ops read runs, for tests that
// keep each read on its indexes and for the read benchmark, which prints
// them.
type Plan struct {
	// Read names the statement: the read it belongs to and what it reads.
	Read string
	SQL  string
	Plan string
}

// The Explain methods plan each statement as the service runs it: the list
// pages' statements with their generic plan (explainGeneric), the others
// (the summary's, a code's and a lock's by key) for the arguments given;
// for those the arguments are keys looked up by equality, which their
// generic plans read through the same index.

// ExplainSummary returns the plans of Summarize's statements.
func (s *Store) ExplainSummary(ctx context.Context) ([]Plan, error) {
	var out []Plan
	for i, q := range summaryQueries(s.cfg.Now()) {
		p, err := s.explainPlan(ctx, fmt.Sprintf("summary %d", i+1), q.sql, q.args...)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ExplainList returns the plans of the statements the first page of f reads
// (each segment of sort=urgency that can hold a code f selects, planned for
// a whole page).
func (s *Store) ExplainList(ctx context.Context, f lifecycle.ListFilter) ([]Plan, error) {
	limit := f.Limit
	if limit <= 0 || limit > lifecycle.MaxListLimit {
		limit = 100
	}
	segs := []int{segRecent}
	if f.Sort != lifecycle.SortRecent {
		segs = nil
		for seg := segTroubled; seg <= segOthers; seg++ {
			if segmentCanMatch(f, seg) {
				segs = append(segs, seg)
			}
		}
	}
	names := map[int]string{segTroubled: "troubled", segUnconfirmed: "unconfirmed", segOthers: "others", segRecent: "recent"}
	var out []Plan
	for _, seg := range segs {
		q, args := segmentQuery(f, seg, nil, limit)
		plan, err := s.explainGeneric(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("explain list segment %s: %w", names[seg], err)
		}
		p := Plan{Read: "list segment " + names[seg], SQL: q, Plan: plan}
		out = append(out, p)
	}
	return out, nil
}

// ExplainGetAccessCode returns the plans of GetAccessCode's statements.
func (s *Store) ExplainGetAccessCode(ctx context.Context, id string) ([]Plan, error) {
	b, _ := getCodeBatch(id)
	var out []Plan
	for i, q := range b.QueuedQueries {
		p, err := s.explainPlan(ctx, fmt.Sprintf("access code %d", i+1), q.SQL, q.Arguments...)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ExplainGetDevice returns the plans of GetDevice's statements: the lock,
// then its codes.
func (s *Store) ExplainGetDevice(ctx context.Context, id string) ([]Plan, error) {
	p, err := s.explainPlan(ctx, "device", getDeviceSQL, id)
	if err != nil {
		return nil, err
	}
	codes, err := s.ExplainList(ctx, lifecycle.ListFilter{DeviceID: id, Limit: lifecycle.DeviceCodesLimit})
	if err != nil {
		return nil, err
	}
	return append([]Plan{p}, codes...), nil
}

func (s *Store) explainPlan(ctx context.Context, read, query string, args ...any) (Plan, error) {
	plan, err := s.explain(ctx, query, args...)
	if err != nil {
		return Plan{}, fmt.Errorf("explain %s: %w", read, err)
	}
	return Plan{Read: read, SQL: query, Plan: plan}, nil
}

// explainGeneric returns the generic plan of query: the plan a statement
// prepared once and run under plan_cache_mode=force_generic_plan (the
// pool's setting) keeps for every execution, whatever its arguments.
func (s *Store) explainGeneric(ctx context.Context, query string, args ...any) (string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		return "", err
	}
	// A prepared statement outlives the transaction: deallocated below.
	if _, err := tx.Exec(ctx, "PREPARE codewatch_explain AS "+query); err != nil {
		return "", err
	}
	defer tx.Exec(context.WithoutCancel(ctx), "DEALLOCATE codewatch_explain") //nolint:errcheck // the connection is reset otherwise
	ph := make([]string, len(args))
	for i := range args {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	exec := "EXPLAIN EXECUTE codewatch_explain"
	if len(args) > 0 {
		exec += "(" + strings.Join(ph, ", ") + ")"
	}
	// Utility statements take no bind parameters: the arguments are
	// written into EXECUTE as literals by pgx (simple protocol).
	rs, err := tx.Query(ctx, exec, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// explain returns EXPLAIN's plan of query with args (it reads nothing).
func (s *Store) explain(ctx context.Context, query string, args ...any) (string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, "EXPLAIN "+query, args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}
