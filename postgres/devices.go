package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// deviceWork is what one ingest batch does to locks: rows to create for the
// locks its events name, connectivity to refold, and the status of the
// locks of the codes it touches (for their alerts).
type deviceWork struct {
	// named are the locks the batch's events name (rows created if new).
	named []string
	// refold: locks with new device.* events, and accounts with new
	// connected_account.* events (all their locks).
	devices, accounts []string
	// Filled by the batch.
	locked map[string]*deviceRow
	evs    map[string][]lifecycle.Event // by device
	acct   map[string][]lifecycle.Event // by account
	locks  map[string]lifecycle.LockStatus
}

type deviceRow struct {
	lifecycle.DeviceState
	id int64
}

// newDeviceWork starts the lock work of a batch that touches t.
func newDeviceWork(t lifecycle.Touched) *deviceWork {
	return &deviceWork{named: t.Named, devices: t.Devices, accounts: t.Accounts,
		locked: map[string]*deviceRow{}, evs: map[string][]lifecycle.Event{},
		acct: map[string][]lifecycle.Event{}, locks: map[string]lifecycle.LockStatus{}}
}

// refolds reports whether the batch changes any lock's connectivity.
func (w *deviceWork) refolds() bool { return len(w.devices)+len(w.accounts) > 0 }

// queue adds the batch's lock work after the codes' locks (the lock order:
// access_codes rows, then devices rows, each in id order). codes are the
// codes the batch touches, own those with an event of their own.
func (w *deviceWork) queue(b *pgx.Batch, codes []string, own map[string]lifecycle.CodeRef) {
	if len(w.named) > 0 {
		ws, acct := mk(len(w.named)), mk(len(w.named))
		byDev := map[string]lifecycle.CodeRef{}
		for _, c := range own {
			if c.DeviceID != "" {
				byDev[c.DeviceID] = c
			}
		}
		for i, d := range w.named {
			ws[i], acct[i] = nonEmpty(byDev[d].WorkspaceID), nonEmpty(byDev[d].ConnectedAccountID)
		}
		// ORDER BY: new rows are inserted, and so locked, in id order.
		b.Queue(`INSERT INTO devices (device_id, workspace_id, connected_account_id)
			SELECT d, w, a FROM unnest($1::text[], $2::text[], $3::text[]) AS t(d, w, a) ORDER BY d
			ON CONFLICT (device_id) DO NOTHING`, w.named, ws, acct)
	}
	if w.refolds() {
		// The locks to refold, locked in device_id order; an account's
		// locks are found through devices_account_idx.
		const which = `device_id = ANY($1) OR connected_account_id = ANY($2)`
		b.Queue(`SELECT device_id, id, COALESCE(connected_account_id, '') FROM devices WHERE `+which+`
			ORDER BY device_id FOR UPDATE`, w.devices, w.accounts).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				r := &deviceRow{}
				if err := rs.Scan(&r.DeviceID, &r.id, &r.ConnectedAccountID); err != nil {
					return err
				}
				w.locked[r.DeviceID] = r
			}
			return rs.Err()
		})
		// Read after the lock: the last transaction to lock a device sees
		// every event committed before it.
		b.Queue(refoldDevicesSQL,
			w.devices, w.accounts).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var dev, acct *string
				var e lifecycle.Event
				var details []byte
				if err := rs.Scan(&dev, &acct, &e.EventID, &e.Type, &e.OccurredAt, &e.WorkspaceID, &details); err != nil {
					return err
				}
				e.Details = details
				if acct != nil {
					e.ConnectedAccountID = *acct
				}
				if dev != nil {
					e.DeviceID = *dev
					w.evs[*dev] = append(w.evs[*dev], e)
				} else if acct != nil {
					w.acct[*acct] = append(w.acct[*acct], e)
				}
			}
			return rs.Err()
		})
	}
	if len(codes) > 0 {
		// The connectivity of the touched codes' locks, for their alerts.
		b.Queue(`SELECT device_id, online, online_changed_at, COALESCE(connectivity_error_code, '')
			FROM devices WHERE device_id IN (SELECT device_id FROM access_codes WHERE access_code_id = ANY($1))`, codes).
			Query(func(rs pgx.Rows) error {
				for rs.Next() {
					var d string
					var l lifecycle.LockStatus
					if err := rs.Scan(&d, &l.Online, &l.OnlineChangedAt, &l.ErrorCode); err != nil {
						return err
					}
					w.locks[d] = l
				}
				return rs.Err()
			})
	}
}

// fold refolds the locked locks (each with its own events and its
// account's) and updates the lock statuses the batch's alerts see.
func (w *deviceWork) fold() []lifecycle.DeviceState {
	out := make([]lifecycle.DeviceState, 0, len(w.locked))
	for id, r := range w.locked {
		evs := w.evs[id]
		acct := r.ConnectedAccountID
		for _, e := range evs {
			if e.ConnectedAccountID != "" {
				acct = e.ConnectedAccountID
			}
		}
		if acct != "" {
			evs = append(evs, w.acct[acct]...)
		}
		st := lifecycle.FoldDevice(evs)
		st.DeviceID = id
		if st.ConnectedAccountID == "" {
			st.ConnectedAccountID = acct
		}
		out = append(out, st)
		w.locks[id] = st.Lock()
	}
	return out
}

// queueWriteDevices writes refolded locks.
func queueWriteDevices(b *pgx.Batch, now time.Time, states []lifecycle.DeviceState) {
	if len(states) == 0 {
		return
	}
	n := len(states)
	ids, ws, acct, code := make([]string, n), mk(n), mk(n), mk(n)
	online, flaky := make([]*bool, n), make([]bool, n)
	changed, last := mkt(n), mkt(n)
	for i, st := range states {
		ids[i], ws[i], acct[i] = st.DeviceID, nonEmpty(st.WorkspaceID), nonEmpty(st.ConnectedAccountID)
		online[i], changed[i], code[i] = st.Online, st.OnlineChangedAt, nonEmpty(st.ConnectivityErrorCode)
		flaky[i], last[i] = st.Flaky, st.LastEventAt
	}
	// The ids only ever fill in: a lock's events may lack them.
	b.Queue(`UPDATE devices d SET
			workspace_id = COALESCE(u.ws, d.workspace_id),
			connected_account_id = COALESCE(u.acct, d.connected_account_id),
			online = u.online, online_changed_at = u.changed, connectivity_error_code = u.code,
			flaky = u.flaky, last_event_at = u.last, updated_at = $9
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::timestamptz[], $6::text[],
			$7::bool[], $8::timestamptz[]) AS u(id, ws, acct, online, changed, code, flaky, last)
		WHERE d.device_id = u.id`, ids, ws, acct, online, changed, code, flaky, last, now)
}

// deviceColumns is a devices row as the API reads it, with its counts
// (access_codes_device_unconfirmed_idx, access_codes_device_troubled_idx).
const deviceColumns = `d.device_id, d.workspace_id, d.online, d.online_changed_at,
	d.connectivity_error_code, d.flaky, d.last_event_at, d.id,
	(SELECT count(*) FROM access_codes c WHERE c.device_id = d.device_id AND c.unconfirmed_since IS NOT NULL),
	(SELECT count(*) FROM access_codes c WHERE c.device_id = d.device_id AND c.needs_troubleshooting),
	d.device_name, d.location_name, d.time_zone, d.custom_metadata, d.provider`

func scanDevice(row pgx.Row) (*lifecycle.Device, int64, error) {
	var d lifecycle.Device
	var id int64
	err := row.Scan(&d.DeviceID, &d.WorkspaceID, &d.Online, &d.OnlineChangedAt, &d.ConnectivityErrorCode,
		&d.ConnectionFlaky, &d.LastEventAt, &id, &d.CodesAwaitingRemoval, &d.CodesNeedingTroubleshooting,
		&d.DeviceName, &d.LocationName, &d.TimeZone, &d.CustomMetadata, &d.Provider)
	return &d, id, err
}

var errDeviceNotFound = &lifecycle.Error{Code: lifecycle.ENotFound, Message: "Could not find a device with device_id"}

// getDeviceSQL reads one lock by its primary key, with its counts.
const getDeviceSQL = `SELECT ` + deviceColumns + ` FROM devices d WHERE d.device_id = $1`

// GetDevice returns a lock with its most urgent access codes (up to
// lifecycle.DeviceCodesLimit) and where the rest start.
func (s *Store) GetDevice(ctx context.Context, id string) (*lifecycle.Device, error) {
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	d, _, err := scanDevice(s.pool.QueryRow(ctx, getDeviceSQL, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errDeviceNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	codes, next, err := s.listAccessCodes(ctx, lifecycle.ListFilter{DeviceID: id, Limit: lifecycle.DeviceCodesLimit})
	if err != nil {
		return nil, err
	}
	d.AccessCodes, d.AccessCodesNext = codes, next
	return d, nil
}

// ListDevices returns a page of locks, newest first by when codewatch first
// heard of them, and the cursor of the next page (0: none).
func (s *Store) ListDevices(ctx context.Context, f lifecycle.DeviceFilter) ([]lifecycle.Device, int64, error) {
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	limit := f.Limit
	if limit <= 0 || limit > lifecycle.MaxListLimit {
		limit = 100
	}
	var where []string
	args := []any{customPlan}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + itoa(len(args)-1)
	}
	if f.Cursor > 0 {
		where = append(where, "d.id < "+arg(f.Cursor))
	}
	if f.Online != nil {
		if *f.Online {
			where = append(where, "d.online")
		} else {
			where = append(where, "d.online = false") // devices_offline_idx
		}
	}
	if f.WorkspaceID != "" {
		where = append(where, "d.workspace_id = "+arg(f.WorkspaceID))
	}
	if f.Query != "" {
		where = append(where, deviceMatchSQL(arg(likePattern(f.Query))))
	}
	if f.HasUnconfirmedDeletions != nil {
		exists := `EXISTS (SELECT 1 FROM access_codes c WHERE c.device_id = d.device_id AND c.unconfirmed_since IS NOT NULL)`
		if *f.HasUnconfirmedDeletions {
			where = append(where, exists)
		} else {
			where = append(where, "NOT "+exists)
		}
	}
	q := `SELECT ` + deviceColumns + ` FROM devices d`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY d.id DESC LIMIT " + arg(limit+1)
	rs, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, unavailable(err)
	}
	defer rs.Close()
	out := []lifecycle.Device{}
	var next, last int64
	for rs.Next() {
		d, id, err := scanDevice(rs)
		if err != nil {
			return nil, 0, unavailable(err)
		}
		if len(out) == limit {
			next = last
			break
		}
		out = append(out, *d)
		last = id
	}
	if err := rs.Err(); err != nil {
		return nil, 0, unavailable(err)
	}
	return out, next, nil
}

// locksOf returns the lock status of each of devices.
func (s *Store) locksOf(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, devices []string) (map[string]lifecycle.LockStatus, error) {
	out := map[string]lifecycle.LockStatus{}
	if len(devices) == 0 {
		return out, nil
	}
	rs, err := q.Query(ctx, `SELECT device_id, online, online_changed_at, COALESCE(connectivity_error_code, '')
		FROM devices WHERE device_id = ANY($1)`, devices)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var d string
		var l lifecycle.LockStatus
		if err := rs.Scan(&d, &l.Online, &l.OnlineChangedAt, &l.ErrorCode); err != nil {
			return nil, err
		}
		out[d] = l
	}
	return out, rs.Err()
}

// fillSeverity sets each listed code's troubleshooting_severity.
func fillSeverity(codes []lifecycle.AccessCode) {
	for i := range codes {
		codes[i].TroubleshootingSeverity = severityOf(codes[i].TroubleshootingReason)
	}
}

func severityOf(reason *string) *string {
	if reason == nil {
		return nil
	}
	s := lifecycle.Severity(*reason)
	return &s
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// devicesOf lists the locks of rows.
func devicesOf(rows []*codeRow) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		if d := deref(r.DeviceID); d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// refoldDevicesSQL reads what FoldDevice needs for the locks $1 and the
// locks of the accounts $2: each lock's device.* events
// (events_device_idx) and its account's connected_account.* events
// (events_account_idx). The locks and accounts are computed first
// (ARRAY(...) is an InitPlan, run once), so each is an index condition and
// a batch reads only its locks' events. Written as IN (SELECT ...), the
// planner, its statistics taken before those events came, read every lock's
// device events and joined them to the few locks wanted: 8-70 ms per batch
// at 9,000 device events, growing with the history (TestRefoldReadsOnlyItsLocks).
const refoldDevicesSQL = `SELECT device_id, connected_account_id, event_id, event_type,
		COALESCE(occurred_at, created_at, received_at), COALESCE(workspace_id, ''), details
	FROM events
	WHERE event_type LIKE 'device.%' AND device_id IS NOT NULL
		AND device_id = ANY(ARRAY(SELECT device_id FROM devices WHERE device_id = ANY($1) OR connected_account_id = ANY($2)))
	UNION ALL
	SELECT NULL, connected_account_id, event_id, event_type,
		COALESCE(occurred_at, created_at, received_at), COALESCE(workspace_id, ''), details
	FROM events
	WHERE event_type LIKE 'connected_account.%' AND connected_account_id IS NOT NULL
		AND connected_account_id = ANY(ARRAY(SELECT DISTINCT connected_account_id FROM devices WHERE device_id = ANY($1) OR connected_account_id = ANY($2)))`
