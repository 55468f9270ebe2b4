package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// Names people use (issue 22): a code's name, its lock's display_name,
// location and time zone (migration 00014), written by the names jobs
// (package names) and read with every code and lock. A name is written only
// when it changes or is first settled: access_code_name is indexed
// (access_codes_name_trgm_idx), so writing it is never a HOT update, and
// the refresh must not rewrite a million rows that did not change.
//
// names_checked_at is NULL while a row's names are due: the scan for due
// names reads access_codes_names_due_idx and devices_names_due_idx, which
// hold only those rows.

// likePattern is a contains-pattern for ILIKE matching s literally: %, _
// and the escape character \ are escaped.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// codeMatchSQL selects codes matching the pattern p (a placeholder): by
// the code's name (access_codes_name_trgm_idx) or its lock's name or
// location (devices' trigram indexes, then access_codes_device_idx for
// the few locks found; ARRAY(...) runs once, an InitPlan).
func codeMatchSQL(p string) string {
	return `(access_code_name ILIKE ` + p + ` OR device_id = ANY(ARRAY(SELECT m.device_id FROM devices m
		WHERE m.device_name ILIKE ` + p + ` OR m.location_name ILIKE ` + p + `)))`
}

// deviceMatchSQL selects locks (devices d) matching the pattern p.
func deviceMatchSQL(p string) string {
	return `(d.device_name ILIKE ` + p + ` OR d.location_name ILIKE ` + p + `)`
}

// CodesNamesDue returns up to limit codes whose names are due, oldest first
// (access_codes_names_due_idx).
func (s *Store) CodesNamesDue(ctx context.Context, limit int) ([]lifecycle.CodeDue, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, `SELECT access_code_id, COALESCE(device_id, ''), terminal_at IS NOT NULL, COALESCE(workspace_id, '')
		FROM access_codes WHERE names_checked_at IS NULL ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (lifecycle.CodeDue, error) {
		var d lifecycle.CodeDue
		err := r.Scan(&d.AccessCodeID, &d.DeviceID, &d.Finished, &d.WorkspaceID)
		return d, err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// DevicesNamesDue returns up to limit locks whose names are due
// (devices_names_due_idx).
func (s *Store) DevicesNamesDue(ctx context.Context, limit int) ([]lifecycle.DeviceDue, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, `SELECT device_id, COALESCE(workspace_id, '') FROM devices
		WHERE names_checked_at IS NULL ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (lifecycle.DeviceDue, error) {
		var d lifecycle.DeviceDue
		err := r.Scan(&d.DeviceID, &d.WorkspaceID)
		return d, err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// LiveCodesAfter returns up to limit active codes (not being deleted) of
// workspace ws after row id after, in id order, and the last row's id: the
// daily refresh's walk (only the API key's workspace is looked up).
func (s *Store) LiveCodesAfter(ctx context.Context, ws string, after int64, limit int) ([]string, int64, error) {
	return s.walk(ctx, `SELECT access_code_id, id FROM access_codes
		WHERE deletion_state = 'active' AND workspace_id = $3 AND id > $1 ORDER BY id LIMIT $2`, ws, after, limit)
}

// DevicesAfter returns up to limit locks of workspace ws after row id
// after, in id order.
func (s *Store) DevicesAfter(ctx context.Context, ws string, after int64, limit int) ([]string, int64, error) {
	return s.walk(ctx, `SELECT device_id, id FROM devices WHERE workspace_id = $3 AND id > $1 ORDER BY id LIMIT $2`, ws, after, limit)
}

func (s *Store) walk(ctx context.Context, q, ws string, after int64, limit int) ([]string, int64, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, q, customPlan, after, limit, ws)
	if err != nil {
		return nil, 0, unavailable(err)
	}
	var ids []string
	last := after
	defer rs.Close()
	for rs.Next() {
		var id string
		if err := rs.Scan(&id, &last); err != nil {
			return nil, 0, unavailable(err)
		}
		ids = append(ids, id)
	}
	if err := rs.Err(); err != nil {
		return nil, 0, unavailable(err)
	}
	return ids, last, nil
}

// SetCodeName records what Seam calls a code (name nil: it has none) and
// settles its names. It writes only when the name changed or was due.
func (s *Store) SetCodeName(ctx context.Context, id string, name *string, at time.Time) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE access_codes SET access_code_name = $2, names_checked_at = COALESCE(names_checked_at, $3)
		WHERE access_code_id = $1 AND (names_checked_at IS NULL OR access_code_name IS DISTINCT FROM $2)`, id, name, at)
	return orUnavailable(err)
}

// SettleCodeNames marks codes' names settled without a name to learn
// (Seam has forgotten them, or answers nothing about them): an alert no
// longer waits for them.
func (s *Store) SettleCodeNames(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE access_codes SET names_checked_at = $2
		WHERE access_code_id = ANY($1) AND names_checked_at IS NULL`, ids, at)
	return orUnavailable(err)
}

// SetDeviceNames records a lock's names (from devices/get, or its custom
// metadata from webhook bodies) and settles them. It writes only when
// something changed or they were due.
func (s *Store) SetDeviceNames(ctx context.Context, id string, n lifecycle.LockNames, at time.Time) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var meta *string
	if len(n.CustomMetadata) > 0 {
		m := string(n.CustomMetadata)
		meta = &m
	}
	_, err := s.pool.Exec(ctx, `UPDATE devices SET device_name = $2, location_name = $3, time_zone = $4,
			custom_metadata = $5::jsonb, provider = $6, names_checked_at = COALESCE(names_checked_at, $7)
		WHERE device_id = $1 AND (names_checked_at IS NULL
			OR (device_name, location_name, time_zone, custom_metadata, provider)
				IS DISTINCT FROM ($2, $3, $4, $5::jsonb, $6))`,
		id, n.DeviceName, n.LocationName, n.TimeZone, meta, n.Provider, at)
	return orUnavailable(err)
}

// SetDeviceMetadata records a lock's custom metadata from a webhook body
// (no API key: the only name-like thing codewatch can learn), keeping its
// other names, and settles them.
func (s *Store) SetDeviceMetadata(ctx context.Context, id string, meta json.RawMessage, at time.Time) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var m *string
	if len(meta) > 0 {
		v := string(meta)
		m = &v
	}
	_, err := s.pool.Exec(ctx, `UPDATE devices SET custom_metadata = COALESCE($2::jsonb, custom_metadata),
			names_checked_at = COALESCE(names_checked_at, $3)
		WHERE device_id = $1 AND (names_checked_at IS NULL OR custom_metadata IS DISTINCT FROM COALESCE($2::jsonb, custom_metadata))`,
		id, m, at)
	return orUnavailable(err)
}

// SettleDeviceNames marks locks' names settled with nothing learnt.
func (s *Store) SettleDeviceNames(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE devices SET names_checked_at = $2
		WHERE device_id = ANY($1) AND names_checked_at IS NULL`, ids, at)
	return orUnavailable(err)
}

// CodeNames returns a code's names and its lock's, and whether either is
// still due (its fetch has not settled). ENotFound for a code codewatch
// does not know.
func (s *Store) CodeNames(ctx context.Context, id string) (n lifecycle.Names, due bool, err error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var codeDue bool
	var devDue *bool
	err = s.pool.QueryRow(ctx, `SELECT c.access_code_name, c.names_checked_at IS NULL,
			d.device_name, d.location_name, d.time_zone, d.names_checked_at IS NULL
		FROM access_codes c LEFT JOIN devices d ON d.device_id = c.device_id
		WHERE c.access_code_id = $1`, id).
		Scan(&n.AccessCodeName, &codeDue, &n.DeviceName, &n.LocationName, &n.TimeZone, &devDue)
	if errors.Is(err, pgx.ErrNoRows) {
		return n, false, errNotFound
	}
	if err != nil {
		return n, false, unavailable(err)
	}
	return n, codeDue || (devDue != nil && *devDue), nil
}

// DeviceMetadataFromBodies returns the device_custom_metadata of the
// newest stored webhook body about a lock (its own device.* events, else
// the events of its newest code), or nil when none carries an object.
// Bodies are sealed: they are opened with the data keys.
func (s *Store) DeviceMetadataFromBodies(ctx context.Context, deviceID string) (json.RawMessage, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	// events_device_idx, then events_access_code_idx through the lock's
	// newest code (access_codes_device_idx).
	rs, err := s.pool.Query(ctx, `(SELECT message_id, key_id, raw FROM events
			WHERE device_id = $1 AND event_type LIKE 'device.%' AND source = 'webhook'
			ORDER BY occurred_at DESC LIMIT 3)
		UNION ALL
		(SELECT message_id, key_id, raw FROM events
			WHERE access_code_id = (SELECT access_code_id FROM access_codes WHERE device_id = $1 ORDER BY id DESC LIMIT 1)
				AND `+historySQL+` AND source = 'webhook'
			ORDER BY occurred_at DESC LIMIT 3)`, deviceID)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rs.Close()
	for rs.Next() {
		var msgID string
		var keyID *string
		var raw []byte
		if err := rs.Scan(&msgID, &keyID, &raw); err != nil {
			return nil, unavailable(err)
		}
		body, err := OpenBody(s.cfg.Keys, tableEvents, msgID, keyID, raw)
		if err != nil {
			continue
		}
		var b struct {
			Meta json.RawMessage `json:"device_custom_metadata"`
		}
		if json.Unmarshal(body, &b) == nil && len(b.Meta) > 0 && bytes.HasPrefix(bytes.TrimSpace(b.Meta), []byte("{")) {
			var compact bytes.Buffer
			// jsonb takes no \u0000; an object that holds one is not kept.
			if json.Compact(&compact, b.Meta) == nil && compact.Len() > 2 && compact.Len() <= 8192 &&
				!bytes.Contains(compact.Bytes(), []byte(`\u0000`)) {
				return compact.Bytes(), nil
			}
		}
	}
	return nil, orUnavailable(rs.Err())
}

// orUnavailable is unavailable(err), or nil for nil.
func orUnavailable(err error) error {
	if err == nil {
		return nil
	}
	return unavailable(err)
}
