// Package benchseed fills a migrated codewatch database with a realistic
// portfolio at scale, fast (set-based SQL, two connections at once): the
// read benchmark's million codes (test/bench -reads) and the plan tests'
// smaller copy (postgres), so both plan the same distribution.
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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/postgres"
)

// Options size the portfolio.
type Options struct {
	Codes      int
	Devices    int
	Workspaces int
	// NoEvents seeds codes and locks only.
	NoEvents bool
	// Keys, when set, seal the events' bodies and hash their PINs as the
	// service does (key_id, pin_hash, pin_hint): a service started with
	// them finds no body in clear to seal. Without keys the bodies are
	// stored in clear, as before encryption (faster, for plan tests).
	Keys *datakeys.Keyring
	// Compact, when set, is called after the inserts and before the
	// vacuum: the trigger of migration 00009 appended a change per code to
	// code_counts (postgres.Store.CompactCounts folds them).
	Compact func(context.Context) error
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

// Seed inserts the portfolio into an empty database, then vacuums and
// analyzes the tables (as autovacuum would have long since) and
// checkpoints, so that the writes of seeding do not land in a measurement.
func Seed(ctx context.Context, pool *pgxpool.Pool, o Options) (*Report, error) {
	if o.Codes < 2 || o.Devices < 1 || o.Workspaces < 1 {
		return nil, fmt.Errorf("benchseed: need codes ≥ 2, devices ≥ 1, workspaces ≥ 1, got %+v", o)
	}
	r := &Report{}
	t := time.Now()
	if err := halves(ctx, pool, codesSQL, 1, int64(o.Codes), o.Devices, o.Workspaces); err != nil {
		return nil, fmt.Errorf("seed access_codes: %w", err)
	}
	if _, err := pool.Exec(ctx, devicesSQL, o.Devices, o.Workspaces); err != nil {
		return nil, fmt.Errorf("seed devices: %w", err)
	}
	r.CodesTook = time.Since(t)
	if !o.NoEvents {
		t = time.Now()
		var lo, hi int64
		if err := pool.QueryRow(ctx, `SELECT min(id), max(id) FROM access_codes`).Scan(&lo, &hi); err != nil {
			return nil, err
		}
		var err error
		if o.Keys == nil {
			err = halves(ctx, pool, eventsSQL, lo, hi)
		} else {
			err = inHalves(lo, hi, func(from, to int64) error { return copySealed(ctx, pool, o.Keys, from, to) })
		}
		if err != nil {
			return nil, fmt.Errorf("seed events: %w", err)
		}
		r.EventsTook = time.Since(t)
	}
	if o.Compact != nil {
		if err := o.Compact(ctx); err != nil {
			return nil, fmt.Errorf("compact counts: %w", err)
		}
	}
	t = time.Now()
	for _, q := range []string{`VACUUM (ANALYZE) access_codes`, `VACUUM (ANALYZE) events`, `VACUUM (ANALYZE) devices`,
		`VACUUM (ANALYZE) code_counts`, `CHECKPOINT`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	r.VacuumTook = time.Since(t)
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM access_codes), (SELECT count(*) FROM events),
		(SELECT count(*) FROM devices)`).Scan(&r.Codes, &r.Events, &r.Devices); err != nil {
		return nil, err
	}
	return r, nil
}

// halves runs q over [from, to] in two halves at once: the machine has two
// cores to fill.
func halves(ctx context.Context, pool *pgxpool.Pool, q string, from, to int64, extra ...any) error {
	return inHalves(from, to, func(a, b int64) error {
		_, err := pool.Exec(ctx, q, append([]any{a, b}, extra...)...)
		return err
	})
}

// inHalves runs f over the two halves of [from, to] at once.
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

// codesSQL inserts codes g in [$1, $2] on $3 locks in $4 workspaces. The
// kind of code g is fixed by (g * 5761) % 10000, a permutation of the
// residues, so every 10,000 consecutive codes hold exactly the proportions
// above; its lock is a hash of g, independent of its kind.
const codesSQL = `
INSERT INTO access_codes (access_code_id, workspace_id, device_id, connected_account_id,
	deletion_state, on_device, needs_troubleshooting, troubleshooting_reason,
	troubleshooting_details, trouble_key, trouble_since, acknowledged_key, acknowledged_at,
	acknowledged_by, acknowledgement_note, deletion_event_id,
	created_at, set_on_device_at, deleted_at, removed_from_device_at,
	last_event_at, terminal_at, last_alert_at, updated_at, alert_seq, confirmed_by, unconfirmed_since)
SELECT md5('code-' || g)::uuid::text,
	md5('ws-' || (d % $4))::uuid::text,
	md5('device-' || d)::uuid::text,
	md5('acct-' || (d % $4))::uuid::text,
	CASE k WHEN 'removed' THEN 'removed' WHEN 'used' THEN 'removed' WHEN 'onlock' THEN 'removed'
		WHEN 'dnp' THEN 'deleted_not_programmed'
		WHEN 'recent' THEN 'awaiting_removal' WHEN 'overdue' THEN 'awaiting_removal' WHEN 'acked' THEN 'awaiting_removal'
		WHEN 'requested' THEN 'deletion_requested' WHEN 'actionfailed' THEN 'deletion_requested'
		WHEN 'delayed' THEN 'delayed' WHEN 'failed' THEN 'failed' ELSE 'active' END,
	k NOT IN ('removed', 'dnp'),
	k IN ('overdue', 'delayed', 'failed', 'actionfailed', 'used', 'onlock'),
	CASE k WHEN 'overdue' THEN 'removal_overdue' WHEN 'acked' THEN 'removal_overdue'
		WHEN 'delayed' THEN 'removal_delayed' WHEN 'failed' THEN 'failed_to_remove'
		WHEN 'actionfailed' THEN 'delete_action_failed' WHEN 'used' THEN 'used_after_deletion'
		WHEN 'onlock' THEN 'still_on_lock' END,
	CASE WHEN k IN ('overdue', 'acked', 'delayed', 'failed', 'actionfailed', 'used', 'onlock') THEN
		'{"access_code_errors":[],"access_code_warnings":[],"device_errors":[],"device_warnings":[]}'::jsonb END,
	CASE WHEN k IN ('overdue', 'acked') THEN 'overdue:' || del_id
		WHEN k IN ('delayed', 'failed', 'actionfailed', 'used', 'onlock') THEN md5('trouble-' || g)::uuid::text END,
	CASE WHEN k IN ('overdue', 'acked') THEN deleted + interval '2 hours'
		WHEN k IN ('delayed', 'failed') THEN deleted + interval '5 minutes'
		WHEN k = 'actionfailed' THEN requested + interval '1 minute'
		WHEN k IN ('used', 'onlock') THEN deleted + interval '1 day' END,
	CASE WHEN k = 'acked' THEN 'overdue:' || del_id END,
	CASE WHEN k = 'acked' THEN deleted + interval '3 hours' END,
	CASE WHEN k = 'acked' THEN 'ops' END,
	CASE WHEN k = 'acked' THEN 'lock offline, visit booked' END,
	CASE WHEN deleted IS NOT NULL THEN del_id END,
	created,
	CASE WHEN k <> 'dnp' THEN created + interval '1 minute' END,
	deleted,
	removed,
	greatest(created + interval '1 minute', deleted, removed, requested),
	CASE WHEN k IN ('removed', 'used', 'onlock') THEN removed WHEN k = 'dnp' THEN deleted END,
	CASE WHEN k IN ('overdue', 'delayed', 'failed', 'actionfailed', 'used', 'onlock') THEN now() - interval '1 hour' END,
	now(),
	CASE WHEN k IN ('overdue', 'acked', 'delayed', 'failed', 'actionfailed', 'used', 'onlock') THEN 1 ELSE 0 END,
	CASE WHEN k IN ('removed', 'used', 'onlock') THEN 'webhook' END,
	CASE WHEN k IN ('recent', 'overdue', 'acked', 'delayed', 'failed') THEN deleted
		WHEN k IN ('requested', 'actionfailed') THEN requested END
FROM (
	SELECT g, k, d, created, md5('deletion-' || g)::uuid::text AS del_id,
		CASE
			WHEN k IN ('removed', 'used', 'onlock') THEN created + ((g % 20) + 1) * interval '1 hour'
			WHEN k = 'dnp' THEN created + interval '5 minutes'
			WHEN k = 'recent' THEN now() - (g % 5400) * interval '1 second'
			WHEN k IN ('overdue', 'acked') THEN now() - interval '3 hours' - (g % 2880) * interval '1 minute'
			WHEN k IN ('delayed', 'failed') THEN now() - interval '10 minutes' - (g % 3000) * interval '1 minute'
		END AS deleted,
		CASE WHEN k IN ('removed', 'used', 'onlock')
			THEN created + ((g % 20) + 1) * interval '1 hour' + ((g % 10) + 1) * interval '1 minute' END AS removed,
		CASE WHEN k IN ('requested', 'actionfailed') THEN now() - (g % 600) * interval '1 second' - interval '10 minutes' END AS requested
	FROM (
		SELECT g, abs(hashint8(g)) % $3 AS d,
			now() - ((g % 80) + 2) * interval '1 day' - (g % 86400) * interval '1 second' AS created,
			CASE
				WHEN h < 5500 THEN 'removed'
				WHEN h < 5700 THEN 'dnp'
				WHEN h < 5800 THEN 'recent'
				WHEN h < 5810 THEN 'requested'
				WHEN h < 5830 THEN 'overdue'
				WHEN h < 5838 THEN 'delayed'
				WHEN h < 5842 THEN 'failed'
				WHEN h < 5845 THEN 'actionfailed'
				WHEN h < 5846 THEN 'used'
				WHEN h < 5847 THEN 'onlock'
				WHEN h < 5860 THEN 'acked'
				ELSE 'active'
			END AS k
		FROM (SELECT g, (g * 5761) % 10000 AS h FROM generate_series($1::bigint, $2::bigint) AS g) a
	) b
) c`

// devicesSQL inserts $1 locks in $2 workspaces; one in 50 is offline.
const devicesSQL = `
INSERT INTO devices (device_id, workspace_id, connected_account_id, online, online_changed_at,
	connectivity_error_code, last_event_at)
SELECT md5('device-' || d)::uuid::text, md5('ws-' || (d % $2))::uuid::text, md5('acct-' || (d % $2))::uuid::text,
	d % 50 <> 3,
	now() - (d % 1000) * interval '1 minute',
	CASE WHEN d % 50 = 3 THEN 'device_disconnected' END,
	now() - (d % 1000) * interval '1 minute'
FROM generate_series(0, $1 - 1) AS d
ON CONFLICT (device_id) DO NOTHING`

// eventsSelect reads the events of the codes with id in [$1, $2], from
// their rows: created and set on the lock, codewatch's request and its
// failed action attempt, Seam's deletion, delay or failure, removal, and an
// unlock after the deletion. pin is the code's PIN (six digits) on the
// events whose body carries it (set on the lock, deleted), as Seam's do.
const eventsSelect = `
SELECT 'msg_seed' || c.id || '_' || e.n AS message_id,
	md5(c.access_code_id || '/' || e.n)::uuid::text AS event_id,
	e.type AS event_type, c.workspace_id, e.at AS occurred_at, e.at AS created_at,
	c.access_code_id, c.device_id, c.connected_account_id,
	e.details,
	convert_to(json_strip_nulls(json_build_object(
		'event_id', md5(c.access_code_id || '/' || e.n)::uuid::text,
		'event_type', e.type,
		'workspace_id', c.workspace_id,
		'access_code_id', c.access_code_id,
		'device_id', c.device_id,
		'connected_account_id', c.connected_account_id,
		'code', CASE WHEN e.type IN ('access_code.set_on_device', 'access_code.deleted') THEN c.pin END,
		'created_at', e.at,
		'occurred_at', e.at))::text, 'UTF8') AS raw,
	e.at + interval '2 seconds' AS received_at,
	CASE WHEN e.type LIKE 'codewatch.%' THEN 'poll' ELSE 'webhook' END AS source,
	CASE WHEN e.type IN ('access_code.set_on_device', 'access_code.deleted') THEN c.pin END AS pin
FROM (SELECT *, lpad((abs(hashint8(id * 7919)) % 1000000)::text, 6, '0') AS pin FROM access_codes
	WHERE id BETWEEN $1 AND $2) c
CROSS JOIN LATERAL (VALUES
	(1, 'access_code.created', c.created_at, NULL::jsonb),
	(2, 'access_code.set_on_device', c.set_on_device_at, NULL),
	(3, 'codewatch.deletion_requested', CASE WHEN c.deletion_state = 'deletion_requested' THEN c.unconfirmed_since END,
		'{"action_attempt_id":"00000000-0000-4000-8000-000000000001","requested_by":"ops"}'::jsonb),
	(4, 'codewatch.action_attempt', CASE WHEN c.troubleshooting_reason = 'delete_action_failed' THEN c.unconfirmed_since + interval '1 minute' END,
		'{"action_attempt_id":"00000000-0000-4000-8000-000000000001","status":"error","error":{"type":"device_offline","message":"Device is offline"}}'::jsonb),
	(5, 'access_code.deleted', c.deleted_at, NULL),
	(6, 'access_code.delay_in_removing_from_device', CASE WHEN c.deletion_state = 'delayed' THEN c.deleted_at + interval '5 minutes' END,
		'{"access_code_errors":[],"access_code_warnings":[{"warning_code":"delay_in_removing_from_device","message":"Delay in removing code from device."}],"device_errors":[],"device_warnings":[]}'::jsonb),
	(7, 'access_code.failed_to_remove_from_device', CASE WHEN c.deletion_state = 'failed' THEN c.deleted_at + interval '5 minutes' END,
		'{"access_code_errors":[{"error_code":"failed_to_remove_from_device","message":"Failed to remove code from device."}],"access_code_warnings":[],"device_errors":[],"device_warnings":[]}'::jsonb),
	(8, 'access_code.removed_from_device', c.removed_from_device_at, NULL),
	(9, 'lock.unlocked', CASE WHEN c.troubleshooting_reason = 'used_after_deletion' THEN c.deleted_at + interval '1 day' END, NULL)
) AS e(n, type, at, details)
WHERE e.at IS NOT NULL`

// eventColumns are the columns eventsSelect gives, in order, without pin.
var eventColumns = []string{"message_id", "event_id", "event_type", "workspace_id", "occurred_at", "created_at",
	"access_code_id", "device_id", "connected_account_id", "details", "raw", "received_at", "source"}

// eventsSQL inserts eventsSelect's events with their bodies in clear (no
// data keys: as a version before encryption stored them).
var eventsSQL = `INSERT INTO events (` + strings.Join(eventColumns, ", ") + `)
	SELECT ` + strings.Join(eventColumns, ", ") + ` FROM (` + eventsSelect + `) e`

// copySealed streams eventsSelect's events for the codes with id in
// [from, to] through Go, which seals each body and hashes its PIN as the
// service does, into events with COPY.
func copySealed(ctx context.Context, pool *pgxpool.Pool, keys *datakeys.Keyring, from, to int64) error {
	src, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer src.Release()
	dst, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer dst.Release()
	rs, err := src.Query(ctx, eventsSelect, from, to)
	if err != nil {
		return err
	}
	defer rs.Close()
	cols := append(slices.Clone(eventColumns), "key_id", "pin_hash", "pin_hint")
	_, err = dst.CopyFrom(ctx, pgx.Identifier{"events"}, cols, &sealingSource{rows: rs, keys: keys})
	if err != nil {
		return err
	}
	return rs.Err()
}

// sealingSource turns eventsSelect's rows into sealed events rows.
type sealingSource struct {
	rows pgx.Rows
	keys *datakeys.Keyring
	vals []any
	err  error
}

func (s *sealingSource) Next() bool {
	if s.err != nil || !s.rows.Next() {
		return false
	}
	v, err := s.rows.Values()
	if err != nil {
		s.err = err
		return false
	}
	// v: eventColumns..., pin
	msgID, _ := v[0].(string)
	raw, _ := v[10].([]byte)
	keyID, sealed, err := s.keys.Seal(raw, postgres.BodyAAD("events", msgID))
	if err != nil {
		s.err = err
		return false
	}
	v[10] = sealed
	var hash []byte
	var hint *string
	if pin, ok := v[13].(string); ok && pin != "" {
		_, hash = s.keys.PinHash(pin)
		h := datakeys.PinHint(pin)
		hint = &h
	}
	s.vals = append(v[:13], keyID, hash, hint)
	return true
}

func (s *sealingSource) Values() ([]any, error) { return s.vals, nil }

func (s *sealingSource) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

// md5UUID is Postgres' md5(s)::uuid::text.
func md5UUID(s string) string {
	h := fmt.Sprintf("%x", md5.Sum([]byte(s)))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
