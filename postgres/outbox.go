package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
)

// queueAlerts records alerts in the outbox with one delivery per sink of
// sinks[i] (gate's routing, oncall.go), and inserts each delivery's River
// job, all in the caller's transaction: an alert and its jobs exist if and
// only if the change that raised it commits. The jobs are inserted first
// (one round trip) so that each delivery row can name its job; the rows are
// queued on b.
func (s *Store) queueAlerts(ctx context.Context, tx pgx.Tx, b *pgx.Batch, alerts []*lifecycle.AlertPayload, sinks [][]string) error {
	if len(alerts) == 0 {
		return nil
	}
	n := len(alerts)
	alertIDs, codes, types, payloads := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, created := make([]int64, n), make([]time.Time, n)
	var deliveries []jobs.DeliverAlert
	for i, a := range alerts {
		alertIDs[i], codes[i], types[i], payloads[i] = a.AlertID, a.AccessCodeID, a.Type, alertJSON(a)
		seqs[i], created[i] = a.Sequence, a.CreatedAt
		for _, sink := range sinks[i] {
			deliveries = append(deliveries, jobs.DeliverAlert{AlertID: a.AlertID, Sink: sink})
		}
	}
	b.Queue(`INSERT INTO alerts (alert_id, access_code_id, type, payload, created_at, sequence)
		SELECT id, code, type, payload::jsonb, created, seq
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
			AS t(id, code, type, payload, created, seq)`,
		alertIDs, codes, types, payloads, created, seqs)
	if len(deliveries) == 0 {
		return nil // routed to no sink: recorded, sent nowhere
	}
	params := jobs.DeliveryParams(deliveries)
	if s.tracer != nil {
		// Each delivery names the delivery that raised its alert as its
		// cause (ingest_trace.go), not the batch it was committed in.
		codeOf := make(map[string]string, n)
		for _, a := range alerts {
			codeOf[a.AlertID] = a.AccessCodeID
		}
		for i, d := range deliveries {
			if meta := jobs.TraceMetadata(causeOf(ctx, codeOf[d.AlertID])); meta != nil {
				params[i].InsertOpts = &river.InsertOpts{Metadata: meta}
			}
		}
	}
	res, err := s.jobs.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("insert delivery jobs: %w", err)
	}
	var dAlert, dSink []string
	var dJob []int64
	for _, r := range res {
		args, ok := deliverArgs(r.Job.EncodedArgs)
		if !ok {
			return errors.New("insert delivery jobs: unexpected job arguments")
		}
		dAlert, dSink, dJob = append(dAlert, args.AlertID), append(dSink, args.Sink), append(dJob, r.Job.ID)
	}
	b.Queue(`INSERT INTO alert_deliveries (alert_id, sink, job_id, next_attempt_at)
		SELECT a, s, j, $4 FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS t(a, s, j)`,
		dAlert, dSink, dJob, created[0])
	return nil
}

const deliveryColumns = `d.alert_id::text, d.sink, a.access_code_id, a.type, a.sequence, d.status,
	d.attempts, d.last_error, a.created_at, d.next_attempt_at, d.sent_at, d.given_up_at, a.payload`

func scanDelivery(r pgx.Row) (*lifecycle.AlertDelivery, error) {
	var d lifecycle.AlertDelivery
	var next time.Time
	err := r.Scan(&d.AlertID, &d.Sink, &d.AccessCodeID, &d.Type, &d.Sequence, &d.Status,
		&d.Attempts, &d.LastError, &d.CreatedAt, &next, &d.SentAt, &d.GivenUpAt, &d.Payload)
	if err != nil {
		return nil, err
	}
	if d.Status == lifecycle.DeliveryPending {
		d.NextAttemptAt = &next
	}
	return &d, nil
}

// Delivery reads one delivery with its alert. An alert pruned by retention
// is ENotFound.
func (s *Store) Delivery(ctx context.Context, alertID, sink string) (*lifecycle.AlertDelivery, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`
		FROM alert_deliveries d JOIN alerts a USING (alert_id)
		WHERE d.alert_id = $1 AND d.sink = $2`, alertID, sink))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &lifecycle.Error{Code: lifecycle.ENotFound, Message: "no such delivery"}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return d, nil
}

// WaitingOn returns the earliest delivery of the same code to the same sink
// that comes before d and is still pending, or nil. Sequences are handed out
// under the code's row lock, so every earlier alert committed before d's did:
// nothing earlier can appear after this answer.
func (s *Store) WaitingOn(ctx context.Context, d *lifecycle.AlertDelivery) (*lifecycle.AlertDelivery, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	// alerts_code_sequence_idx finds the code's earlier alerts; few are
	// ever pending.
	w, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`
		FROM alerts a JOIN alert_deliveries d USING (alert_id)
		WHERE a.access_code_id = $1 AND a.sequence < $2 AND d.sink = $3 AND d.status = 'pending'
		ORDER BY a.sequence LIMIT 1`, d.AccessCodeID, d.Sequence, d.Sink))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return w, nil
}

// StartAttempt counts an attempt before it is made, so that a send whose
// process dies before recording it still shows: a receiver that got an
// alert twice finds two attempts.
func (s *Store) StartAttempt(ctx context.Context, alertID, sink string) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE alert_deliveries SET attempts = attempts + 1
		WHERE alert_id = $1 AND sink = $2 AND status = 'pending'`, alertID, sink)
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// maxErrorText bounds a delivery's last_error.
const maxErrorText = 500

// RecordFailure records why an attempt failed and when the next is due. msg
// is the sink's answer, which may hold anything: it is cleaned and cut.
func (s *Store) RecordFailure(ctx context.Context, alertID, sink, msg string, next time.Time) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE alert_deliveries
		SET last_error = $3, next_attempt_at = $4
		WHERE alert_id = $1 AND sink = $2 AND status = 'pending'`, alertID, sink, lifecycle.CleanText(msg, maxErrorText), next)
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// FinishDelivery records a delivery's end and, in the same transaction,
// whatever complete does (the worker completes its River job there, so the
// record and the job's end commit together). It returns the job of the
// code's next pending delivery to the same sink, 0 if none, so the caller can
// wake it.
func (s *Store) FinishDelivery(ctx context.Context, f lifecycle.DeliveryEnd, complete func(context.Context, pgx.Tx) error) (int64, error) {
	alertID, sink, status, msg := f.AlertID, f.Sink, f.Status, f.Error
	now := s.cfg.Now()
	var next *int64
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var sentAt, gaveUpAt *time.Time
		var lastErr *string
		switch status {
		case lifecycle.DeliverySent:
			sentAt = &now
		case lifecycle.DeliveryGivenUp:
			// Cleaned: a message Postgres refused would make the give-up
			// impossible, and the code's later alerts would wait forever.
			m := lifecycle.CleanText(msg, maxErrorText)
			gaveUpAt, lastErr = &now, &m
		default:
			return fmt.Errorf("finish delivery: status %q", status)
		}
		err := tx.QueryRow(ctx, `WITH done AS (
			UPDATE alert_deliveries SET status = $3, sent_at = $4, given_up_at = $5,
				last_error = COALESCE($6, last_error)
			WHERE alert_id = $1 AND sink = $2 AND status = 'pending'
			RETURNING alert_id
		)
		SELECT (SELECT d.job_id FROM alerts me
			JOIN alerts a ON a.access_code_id = me.access_code_id AND a.sequence > me.sequence
			JOIN alert_deliveries d ON d.alert_id = a.alert_id AND d.sink = $2 AND d.status = 'pending'
			WHERE me.alert_id = $1 ORDER BY a.sequence LIMIT 1)
		FROM (SELECT count(*) FROM done) t`,
			alertID, sink, status, sentAt, gaveUpAt, lastErr).Scan(&next)
		if err != nil {
			return unavailable(err)
		}
		if complete != nil {
			return complete(ctx, tx)
		}
		return nil
	})
	if err != nil || next == nil {
		return 0, err
	}
	return *next, nil
}

// RequeueAlerts inserts a job for every pending delivery. The jobs are unique
// by their arguments, so a delivery whose job exists keeps it; one without
// (written before alerts moved to River, or whose job was lost) gets one.
func (s *Store) RequeueAlerts(ctx context.Context) (int, error) {
	added := 0
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rs, err := tx.Query(ctx, `SELECT alert_id::text, sink FROM alert_deliveries
		WHERE status = 'pending' ORDER BY next_attempt_at LIMIT 1000`)
		if err != nil {
			return unavailable(err)
		}
		params, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (jobs.DeliverAlert, error) {
			var a jobs.DeliverAlert
			err := r.Scan(&a.AlertID, &a.Sink)
			return a, err
		})
		if err != nil {
			return unavailable(err)
		}
		if len(params) == 0 {
			return errRollback
		}
		res, err := s.jobs.InsertManyTx(ctx, tx, jobs.DeliveryParams(params))
		if err != nil {
			return err
		}
		var alertIDs, sinks []string
		var jobIDs []int64
		for _, r := range res {
			if !r.UniqueSkippedAsDuplicate {
				added++
			}
			args, ok := deliverArgs(r.Job.EncodedArgs)
			if !ok {
				continue
			}
			alertIDs, sinks, jobIDs = append(alertIDs, args.AlertID), append(sinks, args.Sink), append(jobIDs, r.Job.ID)
		}
		if _, err := tx.Exec(ctx, `UPDATE alert_deliveries d SET job_id = t.j
		FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS t(a, s, j)
		WHERE d.alert_id = t.a AND d.sink = t.s AND d.job_id IS DISTINCT FROM t.j`,
			alertIDs, sinks, jobIDs); err != nil {
			return unavailable(err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// deliverArgs reads a delivery job's arguments back.
func deliverArgs(encoded []byte) (jobs.DeliverAlert, bool) {
	var a jobs.DeliverAlert
	if json.Unmarshal(encoded, &a) != nil || a.AlertID == "" {
		return a, false
	}
	return a, true
}
