package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamsync"
)

// seamFlags are the settings every command that calls Seam's API reads.
type seamFlags struct {
	env                      *commandEnv
	key, url, rps, perDevice *string
}

func newSeamFlags(fs *flag.FlagSet, getenv func(string) string, stderr io.Writer) *seamFlags {
	return &seamFlags{
		env:       newCommandEnv(fs, getenv, stderr, withDataKeys|withRemovalTimeout),
		key:       config.EnvString(fs, "seam-api-key", "SEAM_API_KEY", "", "Seam API key ($SEAM_API_KEY)", getenv),
		url:       config.EnvString(fs, "seam-api-url", "SEAM_API_URL", seam.DefaultBaseURL, "Seam's API ($SEAM_API_URL)", getenv),
		rps:       config.EnvString(fs, "seam-rps", "CODEWATCH_SEAM_RPS", "5", "requests per second to Seam's API ($CODEWATCH_SEAM_RPS)", getenv),
		perDevice: config.EnvString(fs, "seam-device-deletes-per-minute", "CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE", "20", "deletions per lock per minute ($CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE)", getenv),
	}
}

// seamEnv is what a Seam command works with.
type seamEnv struct {
	store *postgres.Store
	sync  *seamsync.Service
	done  func()
}

// open checks the settings the way serve does, then connects.
func (f *seamFlags) open(ctx context.Context) (*seamEnv, error) {
	args := []string{"--seam-api-key", *f.key, "--seam-api-url", *f.url, "--seam-rps", *f.rps,
		"--seam-device-deletes-per-minute", *f.perDevice, "--removal-timeout", *f.env.removalTimeout}
	cfg, err := config.Load(args, f.env.getenv, io.Discard)
	if err != nil {
		return nil, &exitError{2, err}
	}
	if cfg.SeamAPIKey == "" {
		return nil, &exitError{2, errors.New("SEAM_API_KEY: required (this command calls Seam's API)")}
	}
	logger := slog.New(slog.NewTextHandler(f.env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client, err := seam.New(seamConfig(cfg, logger))
	if err != nil {
		return nil, &exitError{2, fmt.Errorf("SEAM_API_KEY: %w", err)}
	}
	// What Seam's API tells is stored as evidence, sealed like webhooks.
	db, err := f.env.openWith(ctx, keysRequired, cfg.RemovalTimeout)
	if err != nil {
		return nil, err
	}
	store := db.store
	store.Start()
	sy := seamsync.New(seamsync.Config{Seam: client, Store: store, Keys: db.keys, Logger: logger})
	// Which workspace the key reaches: codes of others are left alone, and
	// until it is known no lookup confirms a removal.
	if _, err := sy.ResolveWorkspace(ctx); err != nil {
		logger.Warn("could not read the API key's workspace (workspaces/get): no lookup confirms a removal in this run", "error", err)
	}
	return &seamEnv{
		store: store,
		sync:  sy,
		done:  func() { store.Close(); db.close() },
	}, nil
}

// readIDs returns the ids given as arguments, or one per line on stdin
// when there are none (or the only one is "-").
func readIDs(args []string, stdin io.Reader) ([]string, error) {
	if len(args) > 0 && !(len(args) == 1 && args[0] == "-") {
		return args, nil
	}
	var ids []string
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" && !strings.HasPrefix(id, "#") {
			ids = append(ids, id)
		}
	}
	return ids, sc.Err()
}

// progress writes a progress line that rewrites itself, on a terminal only.
type progress struct {
	w    io.Writer
	tty  bool
	last time.Time
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty}
}

func (p *progress) show(force bool, format string, a ...any) {
	if !p.tty || (!force && time.Since(p.last) < 200*time.Millisecond) {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r\033[K"+format, a...)
}

func (p *progress) end() {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// stdin is where `delete` and `reconcile` read ids from; tests replace it.
var stdin io.Reader = os.Stdin

// deleteCodes handles `codewatch delete ID...`.
func deleteCodes(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("delete")
	sf := newSeamFlags(fs, getenv, stderr)
	by := fs.String("by", "cli", "recorded as the request's requested_by")
	workers := fs.Int("workers", 8, "requests in flight at once (Seam's rate limits still apply)")
	rest, err := parseFlags(fs, "delete", args, stdout,
		"usage: codewatch delete [flags] ID...   (or ids one per line on standard input)\n\n"+
			"Asks Seam to delete each access code, records the request and follows its\n"+
			"action attempt (the running service, or the next one to start, does). Prints\n"+
			"one line per code: the code's deletion_state, or why it failed. Respects\n"+
			"CODEWATCH_SEAM_RPS and Seam's per-lock limit; a code refused with 429 after\n"+
			"every retry is tried again later, never dropped. Exits 1 if any failed.")
	if err != nil {
		return err
	}
	ids, err := readIDs(rest, stdin)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usageError("delete", errors.New("delete: no access code ids given"))
	}
	if *workers < 1 || *workers > 64 {
		return usageError("delete", errors.New("delete: --workers must be from 1 to 64"))
	}
	env, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer env.done()

	type outcome struct {
		id   string
		code *lifecycle.AccessCode
		err  error
	}
	results := make(chan outcome)
	work := make(chan string, len(ids))
	for _, id := range ids {
		work <- id
	}
	var pending sync.WaitGroup
	pending.Add(len(ids))
	go func() { pending.Wait(); close(work) }()
	// A code refused for the rate limit after the client's own retries
	// goes back in the queue after a pause: none is dropped.
	const maxRounds = 20
	rounds := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				code, err := env.sync.RequestDeletion(ctx, id, *by)
				if err != nil && seam.IsRateLimited(err) && ctx.Err() == nil {
					mu.Lock()
					rounds[id]++
					n := rounds[id]
					mu.Unlock()
					if n < maxRounds {
						select {
						case <-time.After(time.Duration(n) * 5 * time.Second):
						case <-ctx.Done():
						}
						work <- id
						continue
					}
				}
				results <- outcome{id, code, err}
				pending.Done()
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	p := newProgress(stderr)
	done, failed := 0, 0
	for r := range results {
		done++
		if r.err != nil {
			failed++
			fmt.Fprintf(stdout, "%s\terror\t%s\n", r.id, errorLine(r.err))
		} else {
			attempt := ""
			if r.code.DeletionRequest != nil {
				attempt = r.code.DeletionRequest.ActionAttemptID
			}
			fmt.Fprintf(stdout, "%s\t%s\taction_attempt_id=%s\n", r.id, r.code.DeletionState, attempt)
		}
		p.show(done == len(ids), "delete: %d/%d done, %d failed", done, len(ids), failed)
	}
	p.end()
	fmt.Fprintf(stderr, "delete: %d requested, %d failed\n", done-failed, failed)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed > 0 {
		return &exitError{1, fmt.Errorf("delete: %d of %d failed", failed, len(ids))}
	}
	return nil
}

// errorLine is an error as one line: its type for the API's errors, and
// the message.
func errorLine(err error) string {
	var de *lifecycle.Error
	if errors.As(err, &de) {
		typ := string(de.Code)
		if de.Code == lifecycle.ENotFound {
			typ = "access_code_not_found"
		}
		return typ + ": " + de.Message
	}
	return err.Error()
}

// reconcile handles `codewatch reconcile [ID...]`.
func reconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reconcile")
	sf := newSeamFlags(fs, getenv, stderr)
	rest, err := parseFlags(fs, "reconcile", args, stdout,
		"usage: codewatch reconcile [flags] [ID...]\n\n"+
			"Looks each access code up in Seam's API now (all codes whose deletion is\n"+
			"unconfirmed when none are given; '-' reads ids from standard input) and\n"+
			"records what Seam says: a 404 after the deletion confirms it. Each lookup\n"+
			"is a job, unique per code, so it never runs twice at once with the\n"+
			"service's own. Prints one line per code with its state afterwards.")
	if err != nil {
		return err
	}
	env, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer env.done()
	var ids []string
	if len(rest) > 0 {
		if ids, err = readIDs(rest, stdin); err != nil {
			return err
		}
	} else {
		for after := ""; ; {
			page, err := env.store.UnconfirmedCodes(ctx, after, 1000)
			if err != nil {
				return err
			}
			ids = append(ids, page...)
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1]
		}
	}
	if len(ids) == 0 {
		fmt.Fprintln(stdout, "reconcile: no unconfirmed deletions")
		return nil
	}
	// This process works the lookups it queues (the service, if running,
	// may take some: either way each runs once).
	workers := river.NewWorkers()
	env.sync.Register(workers)
	client, err := jobs.NewClient(env.store.Pool(), jobs.Config{Workers: workers, Queues: []string{jobs.QueueSeam},
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	env.sync.UseJobs(client)
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()
	return reconcileAll(ctx, env, client, ids, stdout, stderr)
}

func reconcileAll(ctx context.Context, env *seamEnv, _ *river.Client[pgx.Tx], ids []string, stdout, stderr io.Writer) error {
	p := newProgress(stderr)
	failed := 0
	for i, id := range ids {
		code, err := env.sync.ReconcileNow(ctx, id)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s\terror\t%s\n", id, errorLine(err))
		} else {
			by := ""
			if code.ConfirmedBy != nil {
				by = "\tconfirmed_by=" + *code.ConfirmedBy
			}
			fmt.Fprintf(stdout, "%s\t%s%s\n", id, code.DeletionState, by)
		}
		p.show(i+1 == len(ids), "reconcile: %d/%d done, %d failed", i+1, len(ids), failed)
	}
	p.end()
	if failed > 0 {
		return &exitError{1, fmt.Errorf("reconcile: %d of %d failed", failed, len(ids))}
	}
	return nil
}

// backfill handles `codewatch backfill --since D | --between T1,T2`.
func backfill(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backfill")
	sf := newSeamFlags(fs, getenv, stderr)
	since := fs.String("since", "", "read events created in the last D (like 48h or 7d)")
	between := fs.String("between", "", "read events created between two RFC 3339 times, comma-separated")
	err := parseNoArgs(fs, "backfill", args, stdout,
		"usage: codewatch backfill --since D | --between T1,T2 [flags]\n\n"+
			"Reads Seam's events (events/list, in time windows) and stores every one the\n"+
			"webhooks missed, exactly as webhooks are stored; events already stored are\n"+
			"duplicates. Safe while the service runs. Prints stored, duplicate and\n"+
			"quarantined counts.")
	if err != nil {
		return err
	}
	now := time.Now()
	var from, to time.Time
	switch {
	case (*since == "") == (*between == ""):
		return usageError("backfill", errors.New("backfill: give one of --since and --between"))
	case *since != "":
		d, err := config.ParseDuration(*since)
		if err != nil || d <= 0 {
			return usageError("backfill", fmt.Errorf("backfill: --since must be a duration like 48h or 7d, got %q", *since))
		}
		from, to = now.Add(-d), now
	default:
		parts := strings.Split(*between, ",")
		if len(parts) == 2 {
			from, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(parts[0]))
			if err == nil {
				to, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(parts[1]))
			}
		}
		if len(parts) != 2 || err != nil || !from.Before(to) {
			return usageError("backfill", fmt.Errorf("backfill: --between must be two RFC 3339 times, earlier first, like 2026-11-01T00:00:00Z,2026-11-03T00:00:00Z"))
		}
	}
	env, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer env.done()
	p := newProgress(stderr)
	res, err := env.sync.Backfill(ctx, from, to, func(r seamsync.BackfillResult) {
		p.show(false, "backfill: %d read, %d stored, %d duplicate, %d quarantined", r.Read, r.Stored, r.Duplicate, r.Quarantined)
	})
	p.end()
	if err != nil {
		return fmt.Errorf("backfill: %w (after %d stored, %d duplicate, %d quarantined)", err, res.Stored, res.Duplicate, res.Quarantined)
	}
	other := ""
	if res.OtherWorkspace > 0 {
		other = fmt.Sprintf(", %d of another workspace than the API key's (left alone)", res.OtherWorkspace)
	}
	fmt.Fprintf(stdout, "backfill %s..%s: %d read, %d stored, %d duplicate, %d quarantined%s\n",
		from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), res.Read, res.Stored, res.Duplicate, res.Quarantined, other)
	return nil
}
