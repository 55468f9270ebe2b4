package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// DeletionRecord returns what codewatch can show of a code's deletion
// (lifecycle.BuildDeletionRecord): the code with its names, every event of
// its history with its message id (the svix-id of a webhook), the lock's
// reports that carry its PIN (loadPINReportsSQL), and every
// acknowledgement (the acknowledged resolutions in its alerts). One round
// trip after the code's own read.
func (s *Store) DeletionRecord(ctx context.Context, id string) (*lifecycle.DeletionRecord, error) {
	code, err := s.GetAccessCode(ctx, id)
	if err != nil {
		return nil, err
	}
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var events []lifecycle.StoredEvent
	var acks []lifecycle.RecordAcknowledgement
	b := &pgx.Batch{}
	// events_access_code_idx, as GetAccessCode's history.
	b.Queue(`SELECT event_id, event_type, COALESCE(occurred_at, created_at, received_at), received_at,
			source, details, pin_hint, message_id
		FROM events WHERE access_code_id = $1 AND `+historySQL+`
		ORDER BY 3, event_id`, id).Query(scanRecordEvents(&events, false))
	// The lock's reports matched by PIN, with their message ids and hints
	// (events' unique event_id).
	b.Queue(`SELECT r.event_id, r.event_type, r.at, e.received_at, r.source, r.details, e.pin_hint, e.message_id
		FROM (`+loadPINReportsSQL+`) AS r(access_code_id, event_id, event_type, at, workspace_id, device_id,
				connected_account_id, details, source, named_code, same)
			JOIN events e ON e.event_id = r.event_id`, []string{id}).Query(scanRecordEvents(&events, true))
	// Acknowledgements are the acknowledged resolutions among the code's
	// alerts (alerts_code_sequence_idx), in order.
	b.Queue(`SELECT payload->>'acknowledged_by', created_at, NULLIF(payload->>'note', ''),
			payload->>'trouble_id', payload->>'troubleshooting_reason'
		FROM alerts WHERE access_code_id = $1 AND type = 'deletion.resolved'
			AND payload->>'resolution' = 'acknowledged'
		ORDER BY sequence`, id).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var a lifecycle.RecordAcknowledgement
			var by *string
			if err := rs.Scan(&by, &a.AcknowledgedAt, &a.Note, &a.TroubleID, &a.TroubleshootingReason); err != nil {
				return err
			}
			if by != nil {
				a.AcknowledgedBy = *by
			}
			acks = append(acks, a)
		}
		return rs.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, unavailable(err)
	}
	// A code acknowledged before its alerts were kept (or pruned ones):
	// its row still says who acknowledged last.
	if len(acks) == 0 && code.AcknowledgedAt != nil {
		acks = append(acks, lifecycle.RecordAcknowledgement{AcknowledgedBy: deref(code.AcknowledgedBy),
			AcknowledgedAt: *code.AcknowledgedAt, Note: code.AcknowledgementNote})
	}
	return lifecycle.BuildDeletionRecord(code, events, acks, s.cfg.Now()), nil
}

// scanRecordEvents appends the rows of a record's event query (event_id,
// event_type, at, received_at, source, details, pin_hint, message_id) to
// events, marked as matched by PIN or not.
func scanRecordEvents(events *[]lifecycle.StoredEvent, byPIN bool) func(pgx.Rows) error {
	return func(rs pgx.Rows) error {
		for rs.Next() {
			e := lifecycle.StoredEvent{MatchedByPIN: byPIN}
			var details []byte
			if err := rs.Scan(&e.EventID, &e.EventType, &e.OccurredAt, &e.ReceivedAt, &e.Source, &details,
				&e.PinHint, &e.MessageID); err != nil {
				return err
			}
			if details != nil {
				e.Details = details
			}
			*events = append(*events, e)
		}
		return rs.Err()
	}
}
