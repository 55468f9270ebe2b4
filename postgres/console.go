package postgres

// Reads for the ops console (handlers/console's Store): a code's evidence and
// alerts, the alert outbox, and retrying one quarantined delivery.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// CodeEvidence returns the newest limit events that name the code, oldest
// first, with their raw bodies, and how many there are in all: its
// access_code.* history and the other events naming it (lock.unlocked...),
// each read through its own partial index.
func (s *Store) CodeEvidence(ctx context.Context, id string, limit int) (*lifecycle.Evidence, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if limit <= 0 || limit > lifecycle.MaxListLimit {
		limit = lifecycle.MaxListLimit
	}
	const cols = `event_id, event_type, source,
		COALESCE(occurred_at, created_at, received_at) AS at, received_at,
		COALESCE(device_id, '') AS device_id, details, raw, message_id, key_id`
	b := &pgx.Batch{}
	ev := &lifecycle.Evidence{Events: []lifecycle.EvidenceEvent{}}
	// The history (events_access_code_idx), then the rest that names the
	// code (events_code_other_idx): each predicate repeats its index's.
	b.Queue(`SELECT `+cols+` FROM events WHERE access_code_id = $1 AND `+historySQL+`
		UNION ALL
		SELECT `+cols+` FROM events WHERE access_code_id = $1 AND NOT `+ownSQL+` AND NOT `+historySQL+`
		ORDER BY at DESC, event_id DESC LIMIT $2`, id, limit).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var e lifecycle.EvidenceEvent
			var details, raw []byte
			var msgID string
			var keyID *string
			if err := rs.Scan(&e.EventID, &e.EventType, &e.Source, &e.OccurredAt, &e.ReceivedAt,
				&e.DeviceID, &details, &raw, &msgID, &keyID); err != nil {
				return err
			}
			// Bodies are sealed at rest: opened here, masked before shown.
			body, err := OpenBody(s.cfg.Keys, tableEvents, msgID, keyID, raw)
			if err != nil {
				e.RawUnavailable = "body " + openError(err)
			} else {
				e.Raw = body
			}
			if details != nil {
				e.Details = details
			}
			ev.Events = append(ev.Events, e)
		}
		return rs.Err()
	})
	b.Queue(`SELECT (SELECT count(*) FROM events WHERE access_code_id = $1 AND `+historySQL+`)
		+ (SELECT count(*) FROM events WHERE access_code_id = $1 AND NOT `+ownSQL+` AND NOT `+historySQL+`)`, id).
		QueryRow(func(r pgx.Row) error { return r.Scan(&ev.Total) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, unavailable(err)
	}
	slices.Reverse(ev.Events)
	return ev, nil
}

// CodeAlerts returns every delivery of the code's alerts, by alert
// sequence and sink.
func (s *Store) CodeAlerts(ctx context.Context, id string) ([]lifecycle.AlertDelivery, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`
		FROM alerts a JOIN alert_deliveries d USING (alert_id)
		WHERE a.access_code_id = $1 ORDER BY a.sequence, d.sink`, id)
	if err != nil {
		return nil, unavailable(err)
	}
	return collectDeliveries(rs, 0)
}

// ListDeliveries returns alert deliveries, the newest alert first, and the
// cursor of the next page (nil on the last).
func (s *Store) ListDeliveries(ctx context.Context, f lifecycle.DeliveryFilter) ([]lifecycle.AlertDelivery, *lifecycle.DeliveryCursor, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	limit := f.Limit
	if limit <= 0 || limit > lifecycle.MaxListLimit {
		limit = 100
	}
	var afterAlert, afterSink *string
	if f.Before != nil {
		afterAlert, afterSink = &f.Before.AlertID, &f.Before.Sink
	}
	// Alert ids are time-ordered (UUIDv7): the primary key, read
	// backwards, is newest first.
	rs, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`
		FROM alert_deliveries d JOIN alerts a USING (alert_id)
		WHERE ($1::text = '' OR d.status = $1) AND ($2::text = '' OR d.sink = $2)
			AND ($3::uuid IS NULL OR (d.alert_id, d.sink) < ($3::uuid, $4::text))
		ORDER BY d.alert_id DESC, d.sink DESC LIMIT $5`,
		customPlan, f.Status, f.Sink, afterAlert, afterSink, limit+1)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	out, err := collectDeliveries(rs, limit+1)
	if err != nil {
		return nil, nil, err
	}
	if len(out) <= limit {
		return out, nil, nil
	}
	out = out[:limit]
	last := out[limit-1]
	return out, &lifecycle.DeliveryCursor{AlertID: last.AlertID, Sink: last.Sink}, nil
}

func collectDeliveries(rs pgx.Rows, capacity int) ([]lifecycle.AlertDelivery, error) {
	defer rs.Close()
	out := make([]lifecycle.AlertDelivery, 0, capacity)
	for rs.Next() {
		d, err := scanDelivery(rs)
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, *d)
	}
	if err := rs.Err(); err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// CountDeliveries counts alert deliveries by status (every status present,
// zero when none), and reports when the oldest pending one was raised.
func (s *Store) CountDeliveries(ctx context.Context) (map[string]int64, *time.Time, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	out := map[string]int64{lifecycle.DeliveryPending: 0, lifecycle.DeliverySent: 0, lifecycle.DeliveryGivenUp: 0}
	var oldest *time.Time
	b := &pgx.Batch{}
	b.Queue(`SELECT status, count(*) FROM alert_deliveries GROUP BY 1`).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var st string
			var n int64
			if err := rs.Scan(&st, &n); err != nil {
				return err
			}
			out[st] = n
		}
		return rs.Err()
	})
	// Alert ids are time-ordered (UUIDv7): the smallest pending one is the
	// oldest, found without joining every pending delivery to its alert.
	b.Queue(`SELECT a.created_at FROM alerts a WHERE a.alert_id =
		(SELECT d.alert_id FROM alert_deliveries d WHERE d.status = 'pending' ORDER BY d.alert_id LIMIT 1)`).
		QueryRow(func(r pgx.Row) error {
			err := r.Scan(&oldest)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, unavailable(err)
	}
	return out, oldest, nil
}

// RetryQuarantined retries one quarantined delivery (RetryQuarantine with
// its id): it becomes an event (Stored, or Duplicate when the event was
// stored already) and leaves quarantine, or stays with the reason this
// version gives (Quarantined). A row that is not in quarantine (retried
// already) is ENotFound.
func (s *Store) RetryQuarantined(ctx context.Context, id int64) (lifecycle.RetryOutcome, error) {
	res, err := s.RetryQuarantine(ctx, QuarantineRetry{IDs: []int64{id}}, nil)
	if err != nil {
		return lifecycle.RetryOutcome{}, err
	}
	switch {
	case res.Stored > 0:
		return lifecycle.RetryOutcome{Outcome: lifecycle.Stored}, nil
	case res.Duplicates > 0:
		return lifecycle.RetryOutcome{Outcome: lifecycle.Duplicate}, nil
	case res.Unusable == 0:
		return lifecycle.RetryOutcome{}, &lifecycle.Error{Code: lifecycle.ENotFound, Message: "no such quarantined delivery"}
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	out := lifecycle.RetryOutcome{Outcome: lifecycle.Quarantined}
	err = s.pool.QueryRow(ctx, `SELECT reason FROM quarantine WHERE id = $1`, id).Scan(&out.Reason)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return out, unavailable(err)
	}
	return out, nil
}
