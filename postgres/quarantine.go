package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// ListQuarantine returns quarantined deliveries, newest first.
func (s *Store) ListQuarantine(ctx context.Context, limit int, cursor int64) ([]lifecycle.QuarantinedDelivery, int64, error) {
	ctx, done, err := s.startRead(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	if limit <= 0 || limit > lifecycle.MaxListLimit {
		limit = 100
	}
	rs, err := s.pool.Query(ctx, `SELECT id, message_id, reason, received_at, key_id, raw FROM quarantine
		WHERE ($1::bigint = 0 OR id < $1) ORDER BY id DESC LIMIT $2`, customPlan, cursor, limit+1)
	if err != nil {
		return nil, 0, unavailable(err)
	}
	defer rs.Close()
	out := []lifecycle.QuarantinedDelivery{}
	var next int64
	for rs.Next() {
		var q lifecycle.QuarantinedDelivery
		var keyID *string
		var raw []byte
		if err := rs.Scan(&q.ID, &q.MessageID, &q.Reason, &q.ReceivedAt, &keyID, &raw); err != nil {
			return nil, 0, unavailable(err)
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			break
		}
		s.showBody(&q, keyID, raw)
		out = append(out, q)
	}
	if err := rs.Err(); err != nil {
		return nil, 0, unavailable(err)
	}
	return out, next, nil
}

// QuarantineRetry selects what RetryQuarantine takes up: rows whose reason
// starts with Reason ("" for any), or the given ids.
type QuarantineRetry struct {
	Reason string
	IDs    []int64
}

// QuarantineRetryResult counts what a retry did.
type QuarantineRetryResult struct {
	// Stored rows became events (and left quarantine).
	Stored int `json:"stored"`
	// Duplicates were events already stored (they left quarantine too).
	Duplicates int `json:"duplicates"`
	// Unusable rows are still not usable events; they stay, with the
	// reason this version gives.
	Unusable int `json:"unusable"`
}

// retryBatch is how many quarantined rows one retry transaction takes up.
const retryBatch = 100

// RetryQuarantine parses quarantined deliveries again (after an upgrade that
// accepts more, or a fix to the database) and ingests those that are now
// usable, through the same transaction as a webhook: each leaves quarantine
// in the transaction that stores its event, so nothing is lost or doubled
// if a retry is interrupted. progress, when set, is called after each batch.
func (s *Store) RetryQuarantine(ctx context.Context, sel QuarantineRetry, progress func(QuarantineRetryResult)) (QuarantineRetryResult, error) {
	var res QuarantineRetryResult
	if s.cfg.Keys == nil {
		return res, errNoKeys
	}
	var after int64
	for {
		n, last, err := s.retryQuarantineBatch(ctx, sel, after, &res)
		if err != nil {
			return res, err
		}
		if progress != nil && n > 0 {
			progress(res)
		}
		if n < retryBatch {
			return res, nil
		}
		after = last
	}
}

func (s *Store) retryQuarantineBatch(ctx context.Context, sel QuarantineRetry, after int64, res *QuarantineRetryResult) (int, int64, error) {
	var n int
	var last int64
	var usable []*request
	var results map[*request]lifecycle.Result
	var flags []string
	err := s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// FOR UPDATE: two retries at once take turns instead of storing twice.
		rs, err := tx.Query(ctx, `SELECT id, message_id, reason, key_id, raw FROM quarantine
		WHERE id > $1 AND reason LIKE $2 || '%' AND ($3::bigint[] IS NULL OR cardinality($3) = 0 OR id = ANY($3))
		ORDER BY id LIMIT $4 FOR UPDATE`, customPlan, after, escapeLike(sel.Reason), sel.IDs, retryBatch)
		if err != nil {
			return unavailable(err)
		}
		type qrow struct {
			id          int64
			msg, reason string
			keyID       *string
			raw         []byte
		}
		rows, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (qrow, error) {
			var q qrow
			err := r.Scan(&q.id, &q.msg, &q.reason, &q.keyID, &q.raw)
			return q, err
		})
		if err != nil {
			return unavailable(err)
		}
		if len(rows) == 0 {
			return errRollback
		}
		var take []int64
		var stillIDs []int64
		var stillReasons []string
		for _, q := range rows {
			// The body is opened to be parsed and, if usable, sealed again as
			// an event (prepare, below).
			body, err := OpenBody(s.cfg.Keys, tableQuarantine, q.msg, q.keyID, q.raw)
			if err != nil {
				return fmt.Errorf("quarantine row %d: body %s", q.id, openError(err))
			}
			msg := q.msg
			if strings.HasPrefix(q.reason, lifecycle.QuarantineMessageIDReused) {
				// The message id is taken by the other body Seam signed
				// under it: store this one under a name of its own.
				msg = fmt.Sprintf("%s#quarantine-%d", q.msg, q.id)
			}
			// The same checks as a live webhook (newRequest): a body that
			// claims one of codewatch's own event types stays here, whatever
			// it was quarantined for.
			r, err := newRequest(lifecycle.Delivery{MessageID: msg, Body: body, Source: retrySource(q.msg)})
			if err != nil {
				return fmt.Errorf("quarantine row %d: %w", q.id, err)
			}
			if r.reason != "" {
				res.Unusable++
				stillIDs, stillReasons = append(stillIDs, q.id), append(stillReasons, r.reason)
				continue
			}
			s.prepare(r)
			usable = append(usable, r)
			take = append(take, q.id)
		}
		if len(usable) > 0 {
			var final *pgx.Batch
			var err error
			results, final, flags, err = s.ingestIn(ctx, tx, usable, func(b *pgx.Batch) {
				b.Queue(`DELETE FROM quarantine WHERE id = ANY($1)`, take)
			})
			if err == nil {
				err = send(ctx, tx, final)
			}
			if err != nil {
				return unavailable(err)
			}
		}
		if len(stillIDs) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE quarantine q SET reason = u.reason
			FROM unnest($1::bigint[], $2::text[]) AS u(id, reason) WHERE q.id = u.id`, stillIDs, stillReasons); err != nil {
				return unavailable(err)
			}
		}
		n, last = len(rows), rows[len(rows)-1].id
		return nil
	})
	if err != nil || n == 0 {
		return 0, 0, err
	}
	s.reportFlags(flags)
	for _, r := range usable {
		if results[r].Outcome == lifecycle.Stored {
			res.Stored++
		} else {
			res.Duplicates++
		}
	}
	return n, last, nil
}

// retrySource is the source a quarantined body is stored with: "poll" for
// one that a backfill read from events/list, as it would have been stored
// then; "webhook" otherwise. It says only how codewatch learned of a Seam
// event, never that codewatch made it (lifecycle.Admit).
func retrySource(messageID string) string {
	if strings.HasPrefix(messageID, lifecycle.BackfillMessagePrefix) {
		return lifecycle.SourcePoll
	}
	return lifecycle.SourceWebhook
}

// escapeLike makes s match itself in a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
