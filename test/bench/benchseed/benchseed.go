// Package benchseed fills a migrated codewatch database with a realistic
// portfolio at scale, fast (the store's set-based seeding statements,
// postgres/seed.go, two connections at once): the read benchmark's million
// codes (test/bench -reads) and the plan tests' smaller copy (postgres), so
// both plan the same distribution.
//
// The portfolio, per 10,000 codes: 5,500 removed, 4,140 active, 200
// deleted_not_programmed, 100 awaiting removal (deleted in the last 90
// minutes), 10 deletion requests pending, and 50 in trouble or acknowledged:
// 20 removal_overdue, 8 removal_delayed, 4 failed_to_remove, 3
// delete_action_failed, 1 used_after_deletion and 1 still_on_lock (both
// removed), 13 overdue and acknowledged. Codes are spread over Devices locks
// at random, locks over Workspaces workspaces; 2% of locks are offline.
// Each code has the events that brought it there (about 3.1 per code), each
// with a Seam-like raw body of about 400 bytes. Codes were created 2 to 82
// days ago, so none is old enough for the default retention (90 days) to
// prune while a benchmark runs; deletions awaiting removal are at most 90
// minutes old (run the service with a removal timeout above that, or the
// sweeper flags them while it runs).
package benchseed

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/codewatch/codewatch/postgres"
)

// Options size the portfolio.
type Options struct {
	Codes      int
	Devices    int
	Workspaces int
	// NoEvents seeds codes and locks only.
	NoEvents bool
	// Sealed seals the events' bodies with the store's data keys and hashes
	// their PINs as the service does (key_id, pin_hash, pin_hint): a
	// service started with those keys finds no body in clear to seal.
	// Otherwise the bodies are stored in clear, as before encryption
	// (faster, for plan tests).
	Sealed bool
}

// Report says what Seed did.
type Report struct {
	Codes, Events, Devices int64
	CodesTook, EventsTook  time.Duration
	VacuumTook             time.Duration
}

// CodeID is the access_code_id of the g-th seeded code (1-based).
func CodeID(g int) string { return md5UUID(fmt.Sprintf("code-%d", g)) }

// DeviceID is the device_id of the d-th seeded lock (0-based).
func DeviceID(d int) string { return md5UUID(fmt.Sprintf("device-%d", d)) }

// WorkspaceID and AccountID are the workspace and connected account of the
// d-th lock of a portfolio in workspaces workspaces.
func WorkspaceID(d, workspaces int) string { return md5UUID(fmt.Sprintf("ws-%d", d%workspaces)) }

// AccountID: see WorkspaceID.
func AccountID(d, workspaces int) string { return md5UUID(fmt.Sprintf("acct-%d", d%workspaces)) }

// Seed inserts the portfolio into an empty database through store, folds
// the changes the trigger of migration 00009 appended to code_counts (one
// per code; Store.CompactCounts), then vacuums and analyzes the tables (as
// autovacuum would have long since) and checkpoints, so that the writes of
// seeding do not land in a measurement.
func Seed(ctx context.Context, store *postgres.Store, o Options) (*Report, error) {
	if o.Codes < 2 || o.Devices < 1 || o.Workspaces < 1 {
		return nil, fmt.Errorf("benchseed: need codes ≥ 2, devices ≥ 1, workspaces ≥ 1, got %+v", o)
	}
	r := &Report{}
	t := time.Now()
	if err := inHalves(1, int64(o.Codes), func(from, to int64) error {
		return store.SeedCodes(ctx, from, to, o.Devices, o.Workspaces)
	}); err != nil {
		return nil, fmt.Errorf("seed access_codes: %w", err)
	}
	if err := store.SeedDevices(ctx, o.Devices, o.Workspaces); err != nil {
		return nil, fmt.Errorf("seed devices: %w", err)
	}
	r.CodesTook = time.Since(t)
	if !o.NoEvents {
		t = time.Now()
		lo, hi, err := store.SeededCodeIDs(ctx)
		if err != nil {
			return nil, err
		}
		events := store.SeedEvents
		if o.Sealed {
			events = store.SeedSealedEvents
		}
		if err := inHalves(lo, hi, func(from, to int64) error { return events(ctx, from, to) }); err != nil {
			return nil, fmt.Errorf("seed events: %w", err)
		}
		r.EventsTook = time.Since(t)
	}
	if _, err := store.CompactCounts(ctx); err != nil {
		return nil, fmt.Errorf("compact counts: %w", err)
	}
	t = time.Now()
	if err := store.Settle(ctx, "access_codes", "events", "devices", "code_counts"); err != nil {
		return nil, err
	}
	r.VacuumTook = time.Since(t)
	var err error
	if r.Codes, r.Events, r.Devices, err = store.CountSeeded(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// inHalves runs f over the two halves of [from, to] at once: the machine
// has two cores to fill.
func inHalves(from, to int64, f func(from, to int64) error) error {
	half := from + (to-from)/2
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range [][2]int64{{from, half}, {half + 1, to}} {
		wg.Go(func() { errs[i] = f(r[0], r[1]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// md5UUID is Postgres' md5(s)::uuid::text, as the seeding statements
// (postgres/seed.go) name codes, locks, workspaces and accounts.
func md5UUID(s string) string {
	h := fmt.Sprintf("%x", md5.Sum([]byte(s)))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
