package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/datakeys"
)

// Seeding: the statements that fill a migrated, empty database with a
// realistic portfolio at scale, set-based, for the read benchmark and the
// plan tests (test/bench/benchseed runs them, over two halves of the codes
// at once, and documents the portfolio). They live here, beside the
// statements that read what they write, so that the rows are the service's:
// its columns, its code_counts trigger, bodies sealed and PINs hashed as
// ingest does. None runs under Config.QueryTimeout: at a million codes one
// statement takes a minute or more; the caller's context bounds them.

// SeedCodes inserts the portfolio's codes g in [from, to] on devices locks
// in workspaces workspaces (seedCodesSQL).
func (s *Store) SeedCodes(ctx context.Context, from, to int64, devices, workspaces int) error {
	_, err := s.pool.Exec(ctx, seedCodesSQL, from, to, devices, workspaces)
	return err
}

// SeedDevices inserts the portfolio's devices locks in workspaces
// workspaces; one in 50 is offline.
func (s *Store) SeedDevices(ctx context.Context, devices, workspaces int) error {
	_, err := s.pool.Exec(ctx, seedDevicesSQL, devices, workspaces)
	return err
}

// SeededCodeIDs returns the smallest and largest access_codes.id, the
// range SeedEvents and SeedSealedEvents split.
func (s *Store) SeededCodeIDs(ctx context.Context) (lo, hi int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT min(id), max(id) FROM access_codes`).Scan(&lo, &hi)
	return lo, hi, err
}

// SeedEvents inserts the events of the codes with id in [from, to] with
// their bodies in clear (no data keys: as a version before encryption
// stored them; faster, for plan tests).
func (s *Store) SeedEvents(ctx context.Context, from, to int64) error {
	_, err := s.pool.Exec(ctx, seedEventsSQL, from, to)
	return err
}

// SeedSealedEvents inserts the events of the codes with id in [from, to],
// each body sealed under the store's first data key and its PIN hashed as
// the service does (key_id, pin_hash, pin_hint): a service started with the
// same keys finds no body in clear to seal. pin_tokens stays NULL, as on a
// row from before migration 00011 (its token is computed from pin_hash).
// The rows stream from one connection through Go into COPY on another.
func (s *Store) SeedSealedEvents(ctx context.Context, from, to int64) error {
	if s.cfg.Keys == nil {
		return errNoKeys
	}
	src, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer src.Release()
	dst, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer dst.Release()
	rs, err := src.Query(ctx, seedEventsSelect, from, to)
	if err != nil {
		return err
	}
	defer rs.Close()
	cols := append(slices.Clone(seedEventColumns), "key_id", "pin_hash", "pin_hint")
	_, err = dst.CopyFrom(ctx, pgx.Identifier{tableEvents}, cols, &sealingSource{rows: rs, keys: s.cfg.Keys})
	if err != nil {
		return err
	}
	return rs.Err()
}

// Settle vacuums and analyzes tables (as autovacuum would have long since
// after they were written) and checkpoints, so that the writes of seeding
// do not land in a measurement.
func (s *Store) Settle(ctx context.Context, tables ...string) error {
	var stmts []string
	for _, t := range tables {
		stmts = append(stmts, "VACUUM (ANALYZE) "+pgx.Identifier{t}.Sanitize())
	}
	for _, q := range append(stmts, "CHECKPOINT") {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// CountSeeded returns how many codes, events and locks the database holds.
func (s *Store) CountSeeded(ctx context.Context) (codes, events, devices int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM access_codes), (SELECT count(*) FROM events),
		(SELECT count(*) FROM devices)`).Scan(&codes, &events, &devices)
	return codes, events, devices, err
}

// CodeKeys are a code's id and the ids of its lock, workspace and account.
type CodeKeys struct {
	AccessCodeID, DeviceID, WorkspaceID, ConnectedAccountID string
}

// SampleActiveCodes returns up to n active codes, every third in id order
// (spread over a seeded portfolio), for a benchmark's load to delete.
func (s *Store) SampleActiveCodes(ctx context.Context, n int) ([]CodeKeys, error) {
	rs, err := s.pool.Query(ctx, `SELECT access_code_id, device_id, workspace_id, connected_account_id FROM access_codes
		WHERE deletion_state = 'active' AND id % 3 = 1 ORDER BY id LIMIT $1`, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rs, func(r pgx.CollectableRow) (CodeKeys, error) {
		var c CodeKeys
		err := r.Scan(&c.AccessCodeID, &c.DeviceID, &c.WorkspaceID, &c.ConnectedAccountID)
		return c, err
	})
}

// TableSizes are the on-disk sizes a benchmark reports, in bytes.
type TableSizes struct {
	// Codes and CodeIndexes: access_codes' heap and its indexes.
	Codes, CodeIndexes int64
	// Events: events with its indexes and TOAST.
	Events int64
}

// TableSizes returns the sizes of access_codes and events.
func (s *Store) TableSizes(ctx context.Context) (TableSizes, error) {
	var t TableSizes
	err := s.pool.QueryRow(ctx, `SELECT pg_table_size('access_codes'), pg_indexes_size('access_codes'), pg_total_relation_size('events')`).
		Scan(&t.Codes, &t.CodeIndexes, &t.Events)
	return t, err
}

// seedCodesSQL inserts codes g in [$1, $2] on $3 locks in $4 workspaces. The
// kind of code g is fixed by (g * 5761) % 10000, a permutation of the
// residues, so every 10,000 consecutive codes hold exactly the proportions
// of the portfolio (see test/bench/benchseed); its lock is a hash of g,
// independent of its kind.
const seedCodesSQL = `
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

// seedDevicesSQL inserts $1 locks in $2 workspaces; one in 50 is offline.
const seedDevicesSQL = `
INSERT INTO devices (device_id, workspace_id, connected_account_id, online, online_changed_at,
	connectivity_error_code, last_event_at)
SELECT md5('device-' || d)::uuid::text, md5('ws-' || (d % $2))::uuid::text, md5('acct-' || (d % $2))::uuid::text,
	d % 50 <> 3,
	now() - (d % 1000) * interval '1 minute',
	CASE WHEN d % 50 = 3 THEN 'device_disconnected' END,
	now() - (d % 1000) * interval '1 minute'
FROM generate_series(0, $1 - 1) AS d
ON CONFLICT (device_id) DO NOTHING`

// seedEventsSelect reads the events of the codes with id in [$1, $2], from
// their rows: created and set on the lock, codewatch's request and its
// failed action attempt, Seam's deletion, delay or failure, removal, and an
// unlock after the deletion. pin is the code's PIN (six digits) on the
// events whose body carries it (set on the lock, deleted), as Seam's do.
const seedEventsSelect = `
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

// seedEventColumns are the columns seedEventsSelect gives, in order,
// without pin.
var seedEventColumns = []string{"message_id", "event_id", "event_type", "workspace_id", "occurred_at", "created_at",
	"access_code_id", "device_id", "connected_account_id", "details", "raw", "received_at", "source"}

// seedEventsSQL inserts seedEventsSelect's events with their bodies in
// clear.
var seedEventsSQL = `INSERT INTO events (` + strings.Join(seedEventColumns, ", ") + `)
	SELECT ` + strings.Join(seedEventColumns, ", ") + ` FROM (` + seedEventsSelect + `) e`

// sealingSource turns seedEventsSelect's rows into sealed events rows.
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
	// v: seedEventColumns..., pin
	msgID, _ := v[0].(string)
	raw, _ := v[10].([]byte)
	keyID, sealed, err := s.keys.Seal(raw, BodyAAD(tableEvents, msgID))
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
