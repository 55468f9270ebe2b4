package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeTx is a transaction whose BEGIN travels with its first batch and whose
// COMMIT travels with its last: an ingest transaction is then two round trips
// to Postgres instead of four, which at low concurrency is much of a
// webhook's latency. It satisfies pgx.Tx for what runs in between (River
// inserts its jobs through it), but does not nest.
type pipeTx struct {
	conn  *pgxpool.Conn
	begun bool
	ended bool
}

func beginPipe(ctx context.Context, pool *pgxpool.Pool) (*pipeTx, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &pipeTx{conn: c}, nil
}

var errNested = errors.New("pipeTx: nested transactions are not supported")

// withBegin returns b led by BEGIN when the transaction has not begun.
func (t *pipeTx) withBegin(b *pgx.Batch) *pgx.Batch {
	if t.begun {
		return b
	}
	t.begun = true
	nb := &pgx.Batch{}
	nb.Queue("BEGIN")
	nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
	return nb
}

// SendBatch implements pgx.Tx.
func (t *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.conn.SendBatch(ctx, t.withBegin(b))
}

// commitWith sends b followed by COMMIT, in one round trip, and ends the
// transaction. A COMMIT answered ROLLBACK (the transaction had failed) is an
// error.
func (t *pipeTx) commitWith(ctx context.Context, b *pgx.Batch) error {
	nb := t.withBegin(b)
	var tag pgconn.CommandTag
	nb.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	err := t.conn.SendBatch(ctx, nb).Close()
	if err != nil {
		return err
	}
	t.ended = true
	if tag.String() != "COMMIT" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Commit implements pgx.Tx.
func (t *pipeTx) Commit(ctx context.Context) error { return t.commitWith(ctx, &pgx.Batch{}) }

// Rollback implements pgx.Tx; it also returns the connection to the pool
// (so release it with Rollback, after Commit too). A connection whose
// transaction cannot be rolled back is closed rather than reused.
func (t *pipeTx) Rollback(ctx context.Context) error {
	if t.conn == nil {
		return nil
	}
	defer func() { t.conn.Release(); t.conn = nil }()
	if !t.begun || t.ended {
		return nil
	}
	t.ended = true
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = t.conn.Conn().Close(ctx)
		return err
	}
	return nil
}

func (t *pipeTx) begin(ctx context.Context) error {
	if !t.begun {
		t.begun = true
		_, err := t.conn.Exec(ctx, "BEGIN")
		return err
	}
	return nil
}

// Begin implements pgx.Tx.
func (t *pipeTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNested }

// CopyFrom implements pgx.Tx.
func (t *pipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, table, cols, src)
}

// LargeObjects implements pgx.Tx (unused: codewatch stores none).
func (t *pipeTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

// Prepare implements pgx.Tx.
func (t *pipeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Conn().Prepare(ctx, name, sql)
}

// Exec implements pgx.Tx.
func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.begin(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.conn.Exec(ctx, sql, args...)
}

// Query implements pgx.Tx.
func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.conn.Query(ctx, sql, args...)
}

// QueryRow implements pgx.Tx.
func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.begin(ctx); err != nil {
		return errRow{err}
	}
	return t.conn.QueryRow(ctx, sql, args...)
}

// Conn implements pgx.Tx.
func (t *pipeTx) Conn() *pgx.Conn { return t.conn.Conn() }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
