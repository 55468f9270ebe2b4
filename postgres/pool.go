package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// plannerSettings make every statement a named prepared statement with one
// generic plan, kept for the connection's life, and rule out sequential
// scans where an index serves. Every query here is built to be answered from
// an index; planning each execution instead (a custom plan) cost more
// Postgres CPU per webhook than running the statements (make bench:
// 2,370 events/s at concurrency 8 with custom plans, 3,297 with these). A
// generic plan alone is not enough: made while a table is small it is a
// sequential scan, kept as the table grows (earlier versions saw ingest slow
// threefold that way); without sequential scans to choose, the plan is the
// index plan whatever the table's size.
//
// JIT compilation is off: it starts at a plan cost that a statement with a
// sequential scan (priced prohibitively by enable_seqscan=off, even where it
// is the only way, as in folding code_counts) always exceeds, and then
// compiles it on every execution, about 100 ms each time on a 2-core machine
// for a statement that runs in a millisecond.
var plannerSettings = map[string]string{
	"plan_cache_mode": "force_generic_plan",
	"enable_seqscan":  "off",
	"jit":             "off",
}

// customPlan, passed as a query's first argument, sends that query unnamed so
// that it is planned for its actual parameters every time. It is for the
// queries whose best plan depends on their values: a range read with a
// LIMIT (the sweep's next batch, a page of a list, retention's next batch),
// where a generic plan, not knowing how much of the range the limit covers,
// may read the whole range and sort it (make bench saw the sweep's candidate
// scan read 4,900 blocks a batch instead of 500). The ops API's list pages
// are not among them: each is read in an index's order (segmentQuery).
const customPlan = pgx.QueryExecModeCacheDescribe

// statementMode decides, at the first connection, whether the server takes
// startup parameters. Postgres does. PgBouncer refuses any it does not know
// (and before 1.21 cannot route named prepared statements in transaction
// pooling mode): behind it, statements are sent unnamed
// (QueryExecModeCacheDescribe) and planned for their actual parameters each
// time, which needs no setting.
type statementMode struct {
	params map[string]string

	mu      sync.Mutex
	decided bool
	pooler  bool
}

func (m *statementMode) beforeConnect(ctx context.Context, cc *pgx.ConnConfig) error {
	pooler, err := m.detect(ctx, cc)
	if err != nil {
		return err
	}
	if pooler {
		cc.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
		return nil
	}
	cc.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	for k, v := range m.params {
		cc.RuntimeParams[k] = v
	}
	return nil
}

// detect connects once with the parameters to see whether they are taken.
func (m *statementMode) detect(ctx context.Context, cc *pgx.ConnConfig) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.decided || len(m.params) == 0 {
		return m.pooler, nil
	}
	probe := cc.Copy()
	for k, v := range m.params {
		probe.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, probe)
	switch {
	case err == nil:
		_ = conn.Close(ctx)
	case refusedStartupParameter(err):
		m.pooler = true
	default:
		return false, err
	}
	m.decided = true
	return m.pooler, nil
}

// refusedStartupParameter reports PgBouncer's answer to a startup parameter
// it does not track.
func refusedStartupParameter(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "08P01" && strings.Contains(pg.Message, "unsupported startup parameter")
}
