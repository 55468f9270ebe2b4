package migrations

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/codewatch/codewatch/internal/quietlog"
)

// lockID names the session advisory lock held while migrating, so replicas
// starting together migrate one at a time and the later ones find nothing to
// do. One lock covers both River's tables and codewatch's.
const lockID = 0x636f64657761_6d // "codewa" "m"

// Migrator runs River's migrations and codewatch's embedded goose migrations
// against one database.
type Migrator struct {
	pool   *pgxpool.Pool
	db     *sql.DB
	goose  *goose.Provider
	river  *rivermigrate.Migrator[pgx.Tx]
	logger *slog.Logger
	// LockWait bounds the wait for another replica's migration.
	LockWait time.Duration
	// LockRetries is how many more times Up runs a migration whose
	// statement gave up on its lock_timeout (SQLSTATE 55P03), waiting
	// LockRetryDelay before the first retry and twice as long before each
	// next one. The lock it waited for is usually held by a transaction that
	// ends soon (a long ops read, a vacuum); waiting with the lock request
	// queued instead would stall every write queued behind it.
	LockRetries    int
	LockRetryDelay time.Duration
}

// New returns a Migrator on pool. Migrating needs a session (an advisory
// lock): through PgBouncer in transaction mode, give it a direct connection
// (CODEWATCH_MIGRATE_DATABASE_URL).
func New(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	return NewFS(pool, logger, FS)
}

// NewFS is New with the goose migrations of fsys (read from its directory
// ".") instead of the embedded ones: tests run sample migrations through
// the real runner with it.
func NewFS(pool *pgxpool.Pool, logger *slog.Logger, fsys fs.FS) (*Migrator, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := sql.OpenDB(resetConnector{stdlib.GetPoolConnector(pool)})
	// The pool manages idle connections (as stdlib.OpenDBFromPool sets).
	db.SetMaxIdleConns(0)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		db.Close()
		return nil, err
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: quietlog.Warn(logger)})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Migrator{pool: pool, db: db, goose: p, river: rm, logger: logger, LockWait: 5 * time.Minute,
		LockRetries: 4, LockRetryDelay: time.Second}, nil
}

// resetConnector hands goose connections of the pool and, before giving
// each back, resets what a migration SET on its session: a NO TRANSACTION
// migration's `SET lock_timeout` lasts as long as the connection, which the
// service's own queries use next when migrations share its pool.
type resetConnector struct{ driver.Connector }

func (c resetConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("migrations: unexpected driver connection %T", conn)
	}
	return resetConn{sc}, nil
}

// resetConn is a stdlib.Conn (every driver interface it implements is
// promoted) whose Close resets the session first.
type resetConn struct{ *stdlib.Conn }

func (c resetConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// RESET ALL goes back to the values the connection started with (the
	// pool's planner settings are among them), and keeps the prepared
	// statements that DISCARD ALL would drop under pgx's statement cache.
	if _, err := c.Conn.Conn().Exec(ctx, "RESET ALL"); err != nil {
		// Settings unknown: the pool discards a closed connection.
		_ = c.Conn.Conn().Close(ctx)
	}
	return c.Conn.Close()
}

// Close releases the Migrator's connections (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// Error is a migration that the database refused: a permanent failure to
// report and stop on, unlike an unreachable database.
type Error struct {
	// Name names the migration: a file of ours, or River's version.
	Name string
	Err  error
	// Attempts counts the runs of the migration: more than 1 when earlier
	// runs gave up on their lock_timeout and were retried.
	Attempts int
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	var pg *pgconn.PgError
	if errors.As(e.Err, &pg) {
		msg = pg.Message + " (SQLSTATE " + pg.Code + ")"
	}
	switch {
	case e.Attempts > 1 && lockNotAvailable(e.Err):
		msg += fmt.Sprintf(" on each of %d attempts: a session held a lock the migration needs (see pg_locks and pg_stat_activity)", e.Attempts)
	case e.Attempts > 1:
		msg += fmt.Sprintf(" (attempt %d; the earlier ones gave up waiting for a lock)", e.Attempts)
	}
	return "migration " + e.Name + " failed: " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// Applied is one migration applied by Up.
type Applied struct {
	Name     string
	Duration time.Duration
}

// Up applies every pending migration, River's first, under the lock.
func (m *Migrator) Up(ctx context.Context) ([]Applied, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []Applied
	rr, err := m.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if rr != nil {
		for _, v := range rr.Versions {
			out = append(out, Applied{Name: fmt.Sprintf("river %03d_%s", v.Version, v.Name), Duration: v.Duration})
		}
	}
	if err != nil {
		return out, classify("river", err)
	}
	delay := m.LockRetryDelay
	for attempt := 1; ; attempt++ {
		res, err := m.goose.Up(ctx)
		for _, r := range res {
			out = append(out, Applied{Name: r.Source.Path, Duration: r.Duration})
		}
		if err == nil {
			return out, nil
		}
		var pe *goose.PartialError
		if !errors.As(err, &pe) || pe.Failed == nil || pe.Failed.Source == nil {
			return out, classify("", err)
		}
		for _, r := range pe.Applied {
			out = append(out, Applied{Name: r.Source.Path, Duration: r.Duration})
		}
		name := pe.Failed.Source.Path
		if connectionLost(pe.Err) {
			// The database went away mid-migration (a restart, a
			// failover): not the migration's fault; the caller retries.
			return out, pe.Err
		}
		if !lockNotAvailable(pe.Err) || attempt > m.LockRetries {
			return out, &Error{Name: name, Err: pe.Err, Attempts: attempt}
		}
		// goose recorded nothing of the failed migration: a transactional
		// one rolled back whole; a NO TRANSACTION one keeps the statements
		// before the failed one, and runs again from its first statement
		// (the rules in README.md make that safe).
		m.logger.Warn("migration gave up waiting for a lock; retrying", "migration", name,
			"attempt", attempt, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// lockNotAvailable reports a statement that gave up on its lock_timeout.
func lockNotAvailable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "55P03"
}

// classify marks an error the database raised while running a statement as
// a migration Error; connection failures stay as they are (retryable).
func classify(name string, err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && !connectionLost(err) {
		if name == "" {
			name = "(unknown)"
		}
		return &Error{Name: name, Err: err}
	}
	return err
}

// connectionLost reports whether err is the database ending the session or
// refusing it for now, rather than refusing a statement: the server shutting
// down or restarting (57P01-57P03: an administrator's stop, a crash, not yet
// accepting connections), too many connections (53300), or any connection
// exception (class 08). A migration that meets one is retried, like an
// unreachable database, not reported as failed.
func connectionLost(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	switch pg.Code {
	case "57P01", "57P02", "57P03", "53300":
		return true
	}
	return strings.HasPrefix(pg.Code, "08")
}

// Down rolls back codewatch's newest migration. River's tables stay.
func (m *Migrator) Down(ctx context.Context) (*Applied, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := m.goose.Down(ctx)
	if err != nil {
		return nil, err
	}
	return &Applied{Name: r.Source.Path, Duration: r.Duration}, nil
}

// ErrNothingToRollBack is Down with no migration applied.
var ErrNothingToRollBack = goose.ErrNoNextVersion

// Status is one migration and whether it is applied.
type Status struct {
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// Status lists River's migrations, then codewatch's.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	var out []Status
	have, err := m.river.ExistingVersions(ctx)
	if err != nil && !missingTable(err) {
		return nil, err
	}
	applied := map[int]bool{}
	for _, v := range have {
		applied[v.Version] = true
	}
	for _, v := range m.river.AllVersions() {
		out = append(out, Status{Name: fmt.Sprintf("river %03d_%s", v.Version, v.Name), Applied: applied[v.Version]})
	}
	st, err := m.goose.Status(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range st {
		out = append(out, Status{Name: s.Source.Path, Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt})
	}
	return out, nil
}

// Ready reports whether the database is reachable and at the schema this
// build needs, River's included: what a replica's readiness probe asks.
func (m *Migrator) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cur, target, err := m.goose.GetVersions(ctx)
	if err != nil {
		return errors.New("database unreachable")
	}
	if cur < target {
		return fmt.Errorf("database schema at version %d, this build needs %d (run codewatch migrate up)", cur, target)
	}
	have, err := m.river.ExistingVersions(ctx)
	if err != nil {
		if missingTable(err) {
			return errors.New("River's tables are missing (run codewatch migrate up)")
		}
		return errors.New("database unreachable")
	}
	if all := m.river.AllVersions(); len(have) < len(all) {
		return fmt.Errorf("River's schema at version %d, this build needs %d (run codewatch migrate up)", len(have), len(all))
	}
	return nil
}

func missingTable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "42P01"
}

// lock takes the migration lock on a connection of its own, waiting up to
// LockWait for another replica to finish.
func (m *Migrator) lock(ctx context.Context) (func(), error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(m.LockWait)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(lockID)).Scan(&ok); err != nil {
			conn.Release()
			return nil, err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			conn.Release()
			return nil, fmt.Errorf("another process has held the migration lock for %s", m.LockWait)
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(lockID)); err != nil {
			// A session lock dies with its connection: close it.
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, nil
}

// Names lists every migration this build knows, in the order Up applies
// them: River's, then codewatch's.
func Names() ([]string, error) {
	rm, err := rivermigrate.New(riverpgxv5.New(nil), nil)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range rm.AllVersions() {
		out = append(out, fmt.Sprintf("river %03d_%s", v.Version, v.Name))
	}
	files, err := fs.Glob(FS, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return append(out, files...), nil
}

// String lists applied migrations for a log line.
func String(a []Applied) string {
	names := make([]string, len(a))
	for i, x := range a {
		names[i] = x.Name
	}
	return strings.Join(names, ", ")
}
