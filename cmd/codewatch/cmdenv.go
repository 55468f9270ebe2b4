package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/postgres"
)

// commandEnv is what the commands other than serve that work on the
// database share: their common flags, and opening the database with them.
type commandEnv struct {
	getenv func(string) string
	stderr io.Writer
	dbURL  *string
	// dataDir holds the development database and dev.json.
	dataDir *string
	// dataKeys is --data-keys; nil when the command takes none.
	dataKeys *string
	// removalTimeout is --removal-timeout; nil when the command takes none
	// (its store then flags no deletion overdue).
	removalTimeout *string
}

// envFlags selects a commandEnv's flags beyond --database-url and --data-dir.
type envFlags int

const (
	withDataKeys envFlags = 1 << iota
	withRemovalTimeout
)

// newCommandEnv defines --database-url and --data-dir on fs, and the flags
// with selects.
func newCommandEnv(fs *flag.FlagSet, getenv func(string) string, stderr io.Writer, with envFlags) *commandEnv {
	e := &commandEnv{
		getenv:  getenv,
		stderr:  stderr,
		dbURL:   config.EnvString(fs, "database-url", "DATABASE_URL", "", "Postgres URL ($DATABASE_URL)", getenv),
		dataDir: config.EnvString(fs, "data-dir", "CODEWATCH_DATA_DIR", ".codewatch", "development data directory", getenv),
	}
	if with&withDataKeys != 0 {
		e.dataKeys = dataKeysFlag(fs, getenv)
	}
	if with&withRemovalTimeout != 0 {
		e.removalTimeout = config.EnvString(fs, "removal-timeout", "CODEWATCH_REMOVAL_TIMEOUT", "30m", "as for serve ($CODEWATCH_REMOVAL_TIMEOUT)", getenv)
	}
	return e
}

// dataKeysFlag defines --data-keys, defaulting to CODEWATCH_DATA_KEYS (shown
// as "(set)" in help, never its value).
func dataKeysFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	return config.EnvString(fs, "data-keys", "CODEWATCH_DATA_KEYS", "",
		"data keys, id:base64key comma-separated, the first encrypts ($CODEWATCH_DATA_KEYS; default with no database URL: the development key in the data directory)", getenv)
}

// keyNeed says whether a command can run without data keys.
type keyNeed bool

const (
	keysRequired keyNeed = true
	keysOptional keyNeed = false
)

// errKeysRequired is the one line a command that reads or writes stored
// bodies gives without keys.
var errKeysRequired = &exitError{2, errors.New("CODEWATCH_DATA_KEYS: required (the keys serve runs with; stored bodies are encrypted)")}

// commandDB is the database a command works on.
type commandDB struct {
	store *postgres.Store
	// keys seal and open stored bodies; nil when the command runs without.
	keys  *datakeys.Keyring
	close func()
}

// open reads --removal-timeout, when the command has it, and opens the
// store as openWith does.
func (e *commandEnv) open(ctx context.Context, need keyNeed) (*commandDB, error) {
	var rt time.Duration
	if e.removalTimeout != nil {
		var err error
		if rt, err = config.ParseDuration(*e.removalTimeout); err != nil {
			return nil, &exitError{2, fmt.Errorf("CODEWATCH_REMOVAL_TIMEOUT: %w", err)}
		}
	}
	return e.openWith(ctx, need, rt)
}

// openWith reads the data keys (an error without them when need says
// so), opens the database as openPool does and returns a Store that queues
// alerts for the sinks serve is configured with (from the same
// environment), for commands that change codes.
func (e *commandEnv) openWith(ctx context.Context, need keyNeed, removalTimeout time.Duration) (*commandDB, error) {
	kr, err := e.keys()
	if err != nil {
		return nil, err
	}
	if kr == nil && need == keysRequired {
		return nil, errKeysRequired
	}
	pool, done, err := e.openPool(ctx)
	if err != nil {
		return nil, err
	}
	getenv := e.getenv
	sinks := []string{"log"}
	if getenv("CODEWATCH_ALERT_WEBHOOK_URL") != "" {
		sinks = append(sinks, "webhook")
	}
	if getenv("CODEWATCH_SLACK_WEBHOOK_URL") != "" {
		sinks = append(sinks, "slack")
	}
	inserter, err := jobs.NewInserter(pool, nil)
	if err != nil {
		done()
		return nil, err
	}
	// Rows this command rewrites keep the lookup schedule serve gives them.
	reconcileAfter, err := config.ParseDuration(cmp.Or(getenv("CODEWATCH_RECONCILE_AFTER"), "10m"))
	if err != nil {
		done()
		return nil, &exitError{2, fmt.Errorf("CODEWATCH_RECONCILE_AFTER: %w", err)}
	}
	store := postgres.New(pool, inserter, postgres.Config{RemovalTimeout: removalTimeout, Sinks: sinks,
		ReconcileAfter: reconcileAfter, Keys: kr})
	return &commandDB{store: store, keys: kr, close: done}, nil
}

// keys returns the data keys a command other than serve runs with: the flag
// or CODEWATCH_DATA_KEYS, or, against the development database (no
// DATABASE_URL), the key development mode keeps in dev.json. nil when there
// are none; an invalid setting is an error naming the variable (exit 2).
func (e *commandEnv) keys() (*datakeys.Keyring, error) {
	if e.dataKeys != nil && *e.dataKeys != "" {
		kr, err := config.ParseDataKeys(*e.dataKeys)
		if err != nil {
			return nil, &exitError{2, fmt.Errorf("CODEWATCH_DATA_KEYS: %w", err)}
		}
		return kr, nil
	}
	if *e.dbURL != "" {
		return nil, nil
	}
	st, err := readDevState(*e.dataDir)
	if err != nil || st.DataKeys == "" {
		return nil, nil
	}
	kr, err := config.ParseDataKeys(st.DataKeys)
	if err != nil {
		return nil, fmt.Errorf("%s: data_keys: %w", devStatePath(*e.dataDir), err)
	}
	return kr, nil
}

// openPool connects to DATABASE_URL, or to the development Postgres of
// `make run` (starting it for the duration of the command if it is down).
func (e *commandEnv) openPool(ctx context.Context) (*pgxpool.Pool, func(), error) {
	url := *e.dbURL
	cleanup := func() {}
	if url == "" {
		dir := filepath.Join(*e.dataDir, "pg")
		if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
			return nil, nil, errors.New("DATABASE_URL: required (no development database under " + dir + ")")
		}
		srv, err := localpg.Start(ctx, dir, localpg.Options{})
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintln(e.stderr, "using the development Postgres in", dir)
		url = srv.URL("codewatch")
		if srv.Started {
			cleanup = func() { _ = srv.Stop("fast") }
		}
	}
	pcfg, err := postgres.PoolConfig(url)
	if err != nil {
		return nil, nil, errors.New("DATABASE_URL: not a valid Postgres URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return pool, func() { pool.Close(); cleanup() }, nil
}
