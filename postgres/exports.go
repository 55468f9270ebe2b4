package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/codewatch/codewatch/lifecycle"
)

// ExportChunk bounds one read of an export: an export streams any number
// of rows chunk by chunk, each its own short statement, so it holds neither
// a connection nor a snapshot for its whole length, and its memory is one
// chunk's.
const ExportChunk = 1000

// exportSQL reads deleted codes in deletion order after a cursor, through
// access_codes_deleted_idx (deleted_at, id), with each code's lock names
// (devices' primary key) and every reason it needed troubleshooting for:
// those its alerts carried (alerts_code_sequence_idx) and its current one.
const exportSQL = `SELECT c.access_code_id, c.access_code_name, c.device_id, d.device_name, d.location_name,
		c.workspace_id, c.deleted_at,
		CASE WHEN c.deletion_state = 'removed'
			THEN COALESCE((c.confirmation->>'at')::timestamptz, c.removed_from_device_at) END,
		c.confirmed_by, c.deletion_state,
		ARRAY(SELECT DISTINCT a.payload->>'troubleshooting_reason' FROM alerts a
			WHERE a.access_code_id = c.access_code_id AND a.payload->>'troubleshooting_reason' IS NOT NULL),
		c.troubleshooting_reason, c.acknowledged_by, c.id
	FROM access_codes c LEFT JOIN devices d ON d.device_id = c.device_id
	WHERE c.deleted_at IS NOT NULL`

// ExportDeletions reads up to limit deleted codes of f after cursor (nil:
// from the start), in deletion order, and the cursor of the next chunk
// (nil after the last).
func (s *Store) ExportDeletions(ctx context.Context, f lifecycle.ExportFilter, after *lifecycle.ExportCursor, limit int) ([]lifecycle.DeletionRow, *lifecycle.ExportCursor, error) {
	if limit <= 0 || limit > ExportChunk {
		limit = ExportChunk
	}
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	var where []string
	args := []any{customPlan}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args)-1)
	}
	if !f.Since.IsZero() {
		where = append(where, "c.deleted_at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "c.deleted_at < "+arg(f.Until))
	}
	if after != nil {
		where = append(where, "(c.deleted_at, c.id) > ("+arg(after.At)+"::timestamptz, "+arg(after.ID)+"::bigint)")
	}
	q := exportSQL
	if len(where) > 0 {
		q += " AND " + strings.Join(where, " AND ")
	}
	q += " ORDER BY c.deleted_at, c.id LIMIT " + arg(limit+1)
	rs, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	defer rs.Close()
	rows := make([]lifecycle.DeletionRow, 0, min(limit, 64))
	var last lifecycle.ExportCursor
	for rs.Next() {
		var r lifecycle.DeletionRow
		var current *string
		var id int64
		if err := rs.Scan(&r.AccessCodeID, &r.AccessCodeName, &r.DeviceID, &r.DeviceName, &r.LocationName,
			&r.WorkspaceID, &r.DeletedAt, &r.ConfirmedAt, &r.ConfirmedBy, &r.DeletionState,
			&r.TroubleshootingReasons, &current, &r.AcknowledgedBy, &id); err != nil {
			return nil, nil, unavailable(err)
		}
		if len(rows) == limit {
			return rows, &last, nil
		}
		if current != nil {
			r.TroubleshootingReasons = append(r.TroubleshootingReasons, *current)
		}
		r.TroubleshootingReasons = lifecycle.SortReasons(r.TroubleshootingReasons)
		rows = append(rows, r)
		last = lifecycle.ExportCursor{At: *r.DeletedAt, ID: id}
	}
	if err := rs.Err(); err != nil {
		return nil, nil, unavailable(err)
	}
	return rows, nil, nil
}

// EachDeletion streams every deleted code of f to fn, chunk by chunk, in
// deletion order; it stops at fn's first error and returns it.
func (s *Store) EachDeletion(ctx context.Context, f lifecycle.ExportFilter, fn func(*lifecycle.DeletionRow) error) error {
	var cur *lifecycle.ExportCursor
	for {
		rows, next, err := s.ExportDeletions(ctx, f, cur, ExportChunk)
		if err != nil {
			return err
		}
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		if next == nil {
			return nil
		}
		cur = next
	}
}
