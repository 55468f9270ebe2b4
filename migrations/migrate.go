package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrator runs the embedded migrations against one database.
type Migrator struct {
	db       *sql.DB
	Provider *goose.Provider
}

// New returns a Migrator on pool. Every run holds a Postgres session-level
// advisory lock, so replicas starting together migrate one at a time and the
// later ones find nothing to do.
func New(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	db := stdlib.OpenDBFromPool(pool)
	// Poll for the lock every second, for up to five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS, opts...)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Migrator{db: db, Provider: p}, nil
}

// Close releases the Migrator's connections (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) ([]*goose.MigrationResult, error) {
	res, err := m.Provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", err)
	}
	return res, nil
}

// Current reports the applied version and the newest embedded one.
func (m *Migrator) Current(ctx context.Context) (current, target int64, err error) {
	return m.Provider.GetVersions(ctx)
}

// Ready reports whether the database is reachable and at the schema this
// build needs: what a replica's readiness probe asks.
func (m *Migrator) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cur, target, err := m.Current(ctx)
	if err != nil {
		return errors.New("database unreachable")
	}
	if cur < target {
		return fmt.Errorf("database schema at version %d, this build needs %d", cur, target)
	}
	return nil
}
