// Package postgres is codewatch's storage: every SQL statement of every table
// (events, quarantine, access codes, the alert outbox, maintenance) lives
// here. The rules it applies come from package lifecycle, which knows nothing
// of Postgres; callers use the Store through small interfaces of their own.
//
// Lock order, everywhere: access_codes rows in access_code_id order, taken
// before anything else a transaction writes. Ingest, replay, the sweeper,
// reminders and acknowledgement all follow it, so they cannot deadlock on
// each other.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/trace"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

// Config tunes a Store.
type Config struct {
	// RemovalTimeout is how long a deletion may await confirmation before it
	// is overdue; 0 disables overdue detection.
	RemovalTimeout time.Duration
	// Sinks are the alert sinks a new alert is queued for (see package alert).
	Sinks []string
	// Routes choose, per sink, the alerts it takes (oncall.go); a sink
	// without one takes every alert.
	Routes map[string]Route
	// Workers is the number of concurrent ingest transactions (group commit).
	Workers int
	// MaxBatch caps the deliveries committed in one transaction.
	MaxBatch int
	// TxTimeout bounds one ingest transaction, so a request never waits
	// past Svix's 15 s window on a stuck database.
	TxTimeout time.Duration
	// QueryTimeout bounds every other call, so nothing waits forever on a
	// frozen database.
	QueryTimeout time.Duration
	// ReconcileAfter is how old a code's newest evidence may grow, while its
	// deletion is unconfirmed, before codewatch looks it up in Seam's API
	// (CODEWATCH_RECONCILE_AFTER); 0 never schedules lookups.
	ReconcileAfter time.Duration
	// ReadConcurrency bounds the ops API's reads (summary, lists, a code, a
	// lock, quarantine) running in Postgres at once; more wait their turn
	// (0: no bound). Readers in a tight loop then take no more of the
	// database's connections and CPU than that, whatever their number,
	// and leave the rest to ingest and background work.
	ReadConcurrency int
	// Keys seal the raw bodies stored in events and quarantine and key
	// their PIN hashes (CODEWATCH_DATA_KEYS; see bodies.go). Without keys
	// the Store neither ingests nor reads bodies; what needs no body
	// (replay, the API's code reads, the sweep) still works.
	Keys *datakeys.Keyring
	// OnFlag, when set, is told the reason of every code newly flagged for
	// troubleshooting (at ingest, by the sweeper, by a replay), after the
	// flag commits.
	OnFlag func(reason string)
	// Tracer, when set (tracing on), traces ingest: a span per delivery and
	// one per batch transaction, linked (ingest_trace.go).
	Tracer trace.TracerProvider
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 128
	}
	if c.TxTimeout <= 0 {
		c.TxTimeout = 10 * time.Second
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Sinks) == 0 {
		c.Sinks = []string{"log"}
	}
}

// JobQueue inserts River jobs inside a transaction of the Store's
// (*river.Client[pgx.Tx] does; an insert-only client is enough).
type JobQueue interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// PoolConfig parses url into a pool configuration for the store's queries
// (see pool.go for how statements are sent and planned).
func PoolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	m := &statementMode{params: map[string]string{}}
	for k, v := range plannerSettings {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			m.params[k] = v
		}
	}
	cfg.BeforeConnect = m.beforeConnect
	return cfg, nil
}

// Store keeps events, access codes and the alert outbox in Postgres.
type Store struct {
	pool *pgxpool.Pool
	jobs JobQueue
	cfg  Config
	ing  *ingester
	// reads holds a token per ops read in Postgres (Config.ReadConcurrency);
	// nil: no bound.
	reads chan struct{}
	// tracer traces ingest; nil with tracing off.
	tracer trace.Tracer
}

// New returns a Store on pool that queues background work with jobs. Call
// Start before Ingest and Close after the last Ingest.
func New(pool *pgxpool.Pool, jobs JobQueue, cfg Config) *Store {
	cfg.defaults()
	s := &Store{pool: pool, jobs: jobs, cfg: cfg}
	if cfg.Tracer != nil {
		s.tracer = cfg.Tracer.Tracer(tracerName + "/postgres")
	}
	if cfg.ReadConcurrency > 0 {
		s.reads = make(chan struct{}, cfg.ReadConcurrency)
	}
	s.ing = newIngester(s)
	return s
}

// startRead bounds an ops read by the query timeout and waits for its turn
// (Config.ReadConcurrency); done ends both. Only the exported reads call it,
// once each: a read never waits for a turn while holding one.
func (s *Store) startRead(ctx context.Context) (_ context.Context, done func(), _ error) {
	ctx, cancel := s.timeout(ctx)
	if s.reads == nil {
		return ctx, cancel, nil
	}
	select {
	case s.reads <- struct{}{}:
		return ctx, func() { <-s.reads; cancel() }, nil
	case <-ctx.Done():
		cancel()
		return nil, nil, unavailable(context.Cause(ctx))
	}
}

// queryIDs runs a statement selecting one text column (ids) on q, a pool or
// a transaction, and returns its values.
func queryIDs(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]string, error) {
	rs, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, unavailable(err)
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[string])
	if err != nil {
		return nil, unavailable(err)
	}
	return ids, nil
}

// Start runs the ingest workers.
func (s *Store) Start() { s.ing.start() }

// Close stops the ingest workers after they commit what is queued.
func (s *Store) Close() { s.ing.close() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	return s.pool.Ping(ctx)
}

// timeout bounds one call.
func (s *Store) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.QueryTimeout)
}

// errRollback, returned by an inTx body, ends its transaction with a
// rollback and no error: it found nothing to write.
var errRollback = errors.New("nothing to commit")

// inTx runs fn in a transaction bounded by the query timeout: committed when
// fn returns nil, rolled back otherwise. BEGIN's and COMMIT's errors are
// unavailable; fn's are returned as they are (errRollback: nil). fn's
// statements, and so its locks, are its own: inTx sends none but BEGIN and
// COMMIT or ROLLBACK.
func (s *Store) inTx(ctx context.Context, fn func(context.Context, pgx.Tx) error) error {
	return s.runTx(ctx, s.cfg.QueryTimeout, unavailable, fn)
}

// runTx is inTx bounded by timeout, with wrap applied to BEGIN's and
// COMMIT's errors.
func (s *Store) runTx(ctx context.Context, timeout time.Duration, wrap func(error) error, fn func(context.Context, pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return wrap(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	if err := fn(ctx, tx); err != nil {
		if errors.Is(err, errRollback) {
			return nil
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap(err)
	}
	return nil
}

// send sends b in tx unless it is empty.
func send(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

func mk(n int) []*string { return make([]*string, n) }

func mkt(n int) []*time.Time { return make([]*time.Time, n) }

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// historySQL selects the events of a code's history
// (lifecycle.IsHistoryEvent): Seam's access_code.*, codewatch's own, and the
// lock's unlocks and refusals. It is the predicate of events_access_code_idx (and,
// negated, of events_unowned_received_idx and events_code_other_idx;
// migration 00006): queries repeat it exactly so the planner can prove the
// index applies.
const historySQL = `(event_type LIKE 'access_code.%' OR event_type LIKE 'codewatch.%' OR event_type IN ('lock.unlocked', 'lock.access_denied'))`

// ownSQL selects a code's own events (lifecycle.IsAccessCodeEvent), which
// alone make its row. Negated, it is the predicate of
// events_unowned_received_idx and events_code_other_idx (retention).
const ownSQL = `(event_type LIKE 'access_code.%' OR event_type LIKE 'codewatch.%')`

// alertJSON is an alert as stored and sent.
func alertJSON(a *lifecycle.AlertPayload) string {
	b, _ := json.Marshal(a)
	return string(b)
}

// Pool is the store's connection pool, for a River client that shares it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
