package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

// ErrClosed is returned by Ingest after Close.
var ErrClosed = &lifecycle.Error{Code: lifecycle.EUnavailable, Message: "codewatch is shutting down; retry later"}

type request struct {
	d      lifecycle.Delivery
	parsed lifecycle.Parsed
	reason string // non-empty: quarantine
	done   chan reply
	// sealed and pin are the body as stored (see bodies.go).
	sealed sealedBody
	pin    pinColumns
	// span is the delivery's ingest span, with tracing on: the batch's
	// span links to it, and the alerts it raises name it as their cause.
	span trace.SpanContext
}

type reply struct {
	res lifecycle.Result
	err error
	// batch is the span of the transaction that committed the delivery.
	batch trace.SpanContext
}

// ingester batches concurrent deliveries into shared transactions (group
// commit). Each delivery is still answered only after its own batch commits,
// and a row the database refuses fails only its own delivery.
type ingester struct {
	s     *Store
	queue chan *request
	mu    sync.RWMutex // held for reading while sending on queue
	shut  bool
	wg    sync.WaitGroup
}

func newIngester(s *Store) *ingester {
	return &ingester{s: s, queue: make(chan *request, s.cfg.Workers*s.cfg.MaxBatch)}
}

func (g *ingester) start() {
	for i := 0; i < g.s.cfg.Workers; i++ {
		g.wg.Add(1)
		go g.work()
	}
}

func (g *ingester) close() {
	g.mu.Lock()
	if !g.shut {
		g.shut = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *ingester) work() {
	defer g.wg.Done()
	max := g.s.cfg.MaxBatch
	for first := range g.queue {
		batch := []*request{first}
	drain:
		for len(batch) < max {
			select {
			case r, ok := <-g.queue:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		g.commit(batch)
	}
}

// Ingest records one verified delivery: stored, duplicate or quarantined. It
// returns only after the transaction that holds it has committed, or an
// *Error with EUnavailable when that cannot be known to have happened.
func (s *Store) Ingest(ctx context.Context, d lifecycle.Delivery) (lifecycle.Result, error) {
	if s.cfg.Keys == nil {
		return lifecycle.Result{}, errNoKeys
	}
	r, err := newRequest(d)
	if err != nil {
		return lifecycle.Result{}, err
	}
	if s.tracer != nil {
		var end func(reply)
		ctx, end = s.traceIngest(ctx, r)
		rep := reply{}
		defer func() { end(rep) }()
		rep.res, rep.err = s.ingest(ctx, r, &rep)
		return rep.res, rep.err
	}
	return s.ingest(ctx, r, nil)
}

// ingest queues r for a batch and waits for its reply (copied to out when
// set).
func (s *Store) ingest(ctx context.Context, r *request, out *reply) (lifecycle.Result, error) {
	s.prepare(r)

	g := s.ing
	g.mu.RLock()
	if g.shut {
		g.mu.RUnlock()
		return lifecycle.Result{}, ErrClosed
	}
	select {
	case g.queue <- r:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return lifecycle.Result{}, unavailable(ctx.Err())
	}
	select {
	case rep := <-r.done:
		if out != nil {
			*out = rep
		}
		return rep.res, rep.err
	case <-ctx.Done():
		// The batch may still commit; Svix's retry will then be a duplicate.
		return lifecycle.Result{}, unavailable(ctx.Err())
	}
}

// newRequest checks a delivery (lifecycle.Admit); one that may not be stored
// as an event is marked for quarantine. Every path that stores a body comes
// through here: Ingest (webhooks, backfill), Record (codewatch's own events)
// and RetryQuarantine.
func newRequest(d lifecycle.Delivery) (*request, error) {
	r := &request{d: d, done: make(chan reply, 1)}
	p, err := lifecycle.Admit(d)
	if err != nil {
		var u *lifecycle.Unusable
		if !errors.As(err, &u) {
			return nil, err
		}
		r.reason = u.Reason
	}
	r.parsed = p
	return r, nil
}

// commit runs one batch, splitting it when the database refuses a row.
func (g *ingester) commit(batch []*request) {
	s := g.s
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.TxTimeout)
	defer cancel()
	var results map[*request]lifecycle.Result
	var err error
	var span trace.Span
	if s.tracer != nil {
		ctx, span = s.traceBatch(ctx, batch)
		defer func() { endSpan(span, err) }()
	}
	for attempt := 0; attempt < 3; attempt++ {
		results, err = s.ingestTx(ctx, batch)
		if err == nil || !retryable(err) {
			break
		}
	}
	switch {
	case err == nil:
		var sc trace.SpanContext
		if span != nil {
			sc = span.SpanContext()
		}
		for _, r := range batch {
			r.done <- reply{res: results[r], batch: sc}
		}
	case dataError(err) && len(batch) > 1:
		for _, r := range batch {
			g.commit([]*request{r})
		}
	case dataError(err) && len(batch) == 1 && batch[0].reason == "" && g.ownFault(ctx, batch[0]):
		// Seam signed it: keep it even though the database refuses its
		// parsed row.
		s.cfg.Logger.WarnContext(ctx, "event refused by the database; quarantining it",
			"message_id", batch[0].d.MessageID, "sqlstate", sqlState(err))
		r := batch[0]
		r.reason = "store_failed: sqlstate " + sqlState(err)
		g.commit(batch)
	default:
		s.cfg.Logger.ErrorContext(ctx, "ingest transaction failed", "error", err, "batch", len(batch))
		for _, r := range batch {
			r.done <- reply{err: unavailable(err)}
		}
	}
}

// ownFault reports whether the database refuses the event's own row, as
// opposed to something the event caused elsewhere (a code's state, an alert):
// it inserts the row alone and rolls back. Only an event at fault is
// quarantined; any other failure is a 503, so Seam retries once the cause is
// fixed.
func (g *ingester) ownFault(ctx context.Context, r *request) bool {
	tx, err := g.s.pool.Begin(ctx)
	if err != nil {
		return false
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // always rolled back
	b := &pgx.Batch{}
	queueInsertEvents(b, g.s.cfg.Keys, []*request{r}, map[string]bool{}, nil)
	return dataError(tx.SendBatch(ctx, b).Close())
}

// ingestTx stores a batch in one transaction: insert the events (the unique
// constraints decide duplicates), lock each touched code, fold its events,
// write its row and any alert, commit.
func (s *Store) ingestTx(ctx context.Context, batch []*request) (map[*request]lifecycle.Result, error) {
	if s.tracer != nil {
		ctx = withCauses(ctx, batch)
	}
	// Two round trips: BEGIN and the reads with the first batch, the writes
	// and COMMIT with the second.
	tx, err := beginPipe(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // returns the connection; no-op after commit
	results, final, flags, err := s.ingestIn(ctx, tx, batch, nil)
	if err != nil {
		return nil, err
	}
	if err := tx.commitWith(ctx, final); err != nil {
		return nil, err
	}
	s.reportFlags(flags)
	return results, nil
}

// ingestIn stores a batch in tx, but for the last batch of writes, which it
// returns for the caller to send (with COMMIT, when it can). prelude, when
// set, queues statements that run first in the same round trip (quarantine
// retry deletes the rows it re-ingests there).
func (s *Store) ingestIn(ctx context.Context, tx pgx.Tx, batch []*request, prelude func(*pgx.Batch)) (map[*request]lifecycle.Result, *pgx.Batch, []string, error) {
	now := s.cfg.Now()
	results := make(map[*request]lifecycle.Result, len(batch))
	sp := splitBatch(batch, results)
	events, quarantine, reused := sp.events, sp.quarantine, sp.reused
	touched, byPIN, err := s.touches(ctx, tx, events)
	if err != nil {
		return nil, nil, nil, err
	}
	codes := touched.Codes()

	inserted := map[string]bool{}
	insertedAt := map[string]time.Time{}
	rows := map[string]*codeRow{}
	evs := map[string][]lifecycle.Event{}
	b := &pgx.Batch{}
	if prelude != nil {
		prelude(b)
	}
	if len(events) > 0 {
		queueInsertEvents(b, s.cfg.Keys, events, inserted, insertedAt)
	}
	if len(quarantine) > 0 {
		queueInsertQuarantine(b, s.cfg.Keys, quarantine, inserted)
	}
	if len(codes) > 0 {
		queueLockCodes(b, codes, touched.Own, rows)
		queueLoadRelevant(b, codes, touched.Own, evs)
	}
	// Locks: rows for those named, connectivity refolded (after the codes'
	// row locks: the lock order).
	dw := newDeviceWork(touched)
	dw.queue(b, codes, touched.Own)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, nil, err
	}
	// A message id already stored: a retry (same body: a duplicate), the
	// same event under another message id (a duplicate), or a different
	// body under a used message id, which Seam signed and so is kept, in
	// quarantine.
	var conflicted []*request
	for _, r := range append(events[:len(events):len(events)], quarantine...) {
		if !inserted[r.d.MessageID] {
			conflicted = append(conflicted, r)
		}
	}
	if len(conflicted) > 0 {
		more, err := s.differentBodies(ctx, tx, conflicted)
		if err != nil {
			return nil, nil, nil, err
		}
		reused = append(reused, more...)
	}
	if len(reused) > 0 {
		if err := s.quarantineReused(ctx, tx, reused, results); err != nil {
			return nil, nil, nil, err
		}
	}

	final := &pgx.Batch{}
	var flags []string
	devices := dw.fold()
	if len(codes) > 0 {
		for id := range touched.Own {
			if rows[id] == nil {
				// Retention deleted a row between our insert and our lock.
				return nil, nil, nil, errRowVanished
			}
		}
		var err error
		later := laterByPIN(byPIN, insertedAt)
		if final, flags, err = s.writeChanges(ctx, tx, now, s.recompute(now, rows, evs, dw.locks, later)); err != nil {
			return nil, nil, nil, err
		}
	}
	queueWriteDevices(final, now, devices)
	sp.report(batch, inserted, results)
	return results, final, flags, nil
}

// batchSplit is a batch sorted by what becomes of each delivery. Copies of
// one message within the batch: the first is inserted, the others are
// duplicates of it (or, with another body, bodies reusing its message id).
type batchSplit struct {
	firsts                     map[string]*request
	events, quarantine, reused []*request
}

// splitBatch sorts batch, recording the copies that are duplicates in
// results.
func splitBatch(batch []*request, results map[*request]lifecycle.Result) batchSplit {
	sp := batchSplit{firsts: make(map[string]*request, len(batch))}
	for _, r := range batch {
		if first, ok := sp.firsts[r.d.MessageID]; ok {
			if !bytes.Equal(first.d.Body, r.d.Body) {
				sp.reused = append(sp.reused, r)
				continue
			}
			results[r] = lifecycle.Result{Outcome: lifecycle.Duplicate, EventType: r.parsed.EventType}
			continue
		}
		sp.firsts[r.d.MessageID] = r
		if r.reason != "" {
			sp.quarantine = append(sp.quarantine, r)
		} else {
			sp.events = append(sp.events, r)
		}
	}
	return sp
}

// report fills in the results of the batch's deliveries once their rows are
// inserted (or found stored already); those of reused message ids are in
// results already.
func (sp batchSplit) report(batch []*request, inserted map[string]bool, results map[*request]lifecycle.Result) {
	for _, r := range sp.events {
		if _, done := results[r]; done {
			continue // reused message id
		}
		res := lifecycle.Result{Outcome: lifecycle.Duplicate, EventType: r.parsed.EventType}
		if inserted[r.d.MessageID] {
			res.Outcome = lifecycle.Stored
			if r.parsed.OccurredAt != nil {
				res.OccurredAt = *r.parsed.OccurredAt
			}
		}
		results[r] = res
	}
	for _, r := range sp.quarantine {
		if _, done := results[r]; done {
			continue
		}
		out := lifecycle.Duplicate
		if inserted[r.d.MessageID] {
			out = lifecycle.Quarantined
		}
		results[r] = lifecycle.Result{Outcome: out, Reason: r.reason}
	}
	for _, r := range batch {
		if res, ok := results[r]; ok && res.Outcome == lifecycle.Duplicate {
			if first := sp.firsts[r.d.MessageID]; first != r {
				// A copy within the batch reports what happened to the first.
				results[r] = lifecycle.Result{Outcome: lifecycle.Duplicate, EventType: results[first].EventType}
			}
		}
	}
}

// touches returns the codes and locks the batch's events touch
// (lifecycle.Touches). A lock's report by PIN touches the codes on its lock
// with that PIN: one more round trip, only for such reports; byPIN lists
// the reports that matched each code.
func (s *Store) touches(ctx context.Context, tx pgx.Tx, events []*request) (t lifecycle.Touched, byPIN map[string][]*request, err error) {
	parsed := make([]*lifecycle.Parsed, len(events))
	for i, r := range events {
		parsed[i] = &r.parsed
	}
	t = lifecycle.Touches(parsed)
	if len(t.PINReports) == 0 {
		return t, nil, nil
	}
	reports := make([]*request, len(t.PINReports))
	for i, j := range t.PINReports {
		reports[i] = events[j]
	}
	byPIN, err = s.pinMatchedCodes(ctx, tx, reports)
	if err != nil {
		return t, nil, err
	}
	matched := make([]string, 0, len(byPIN))
	for id := range byPIN {
		matched = append(matched, id)
	}
	t.AddMatched(matched)
	return t, byPIN, nil
}

// queueInsertEvents inserts reqs' events, recording in inserted the message
// ids that were new and, when at is given, each one's time as a code's
// history reads it (for last_event_at: history.go).
func queueInsertEvents(b *pgx.Batch, keys *datakeys.Keyring, reqs []*request, inserted map[string]bool, at map[string]time.Time) {
	n := len(reqs)
	msg, eid, typ, src := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ws, code, dev, acct, details := mk(n), mk(n), mk(n), mk(n), mk(n)
	occ, cre := mkt(n), mkt(n)
	raw, keyID, pinHash, pinHint := make([][]byte, n), make([]string, n), make([][]byte, n), mk(n)
	// pin_tokens as one array literal per row: pgx encodes no array of
	// arrays of unequal (or no) length.
	pinTokens := mk(n)
	for i, r := range reqs {
		p := &r.parsed
		msg[i], eid[i], typ[i] = r.d.MessageID, p.EventID, p.EventType
		ws[i], code[i], dev[i], acct[i] = nonEmpty(p.WorkspaceID), nonEmpty(p.AccessCodeID), nonEmpty(p.DeviceID), nonEmpty(p.ConnectedAccountID)
		occ[i], cre[i] = p.OccurredAt, p.CreatedAt
		if p.Details != nil {
			d := string(p.Details)
			details[i] = &d
		}
		keyID[i], raw[i] = r.seal(keys, tableEvents)
		pinHash[i], pinHint[i], pinTokens[i] = r.pin.hash, r.pin.hint, byteaArray(r.pin.tokens)
		src[i] = lifecycle.SourceWebhook
		if r.d.Source == lifecycle.SourcePoll {
			src[i] = lifecycle.SourcePoll
		}
	}
	// ON CONFLICT DO NOTHING with no target covers both unique constraints
	// (message_id and event_id); RETURNING names the rows that were new.
	// raw is sealed under key_id (bodies.go), as is pin_hash; pin_tokens
	// are under every key (pins_match.go).
	b.Queue(`INSERT INTO events (message_id, event_id, event_type, workspace_id,
			occurred_at, created_at, access_code_id, device_id, connected_account_id,
			details, raw, key_id, pin_hash, pin_hint, source, pin_tokens)
		SELECT m, e, t, w, o, c, a, d, ca, det::jsonb, r, k, ph, pt, s, tk::bytea[]
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
			$6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[],
			$12::text[], $13::bytea[], $14::text[], $15::text[], $16::text[])
			AS u(m, e, t, w, o, c, a, d, ca, det, r, k, ph, pt, s, tk)
		ON CONFLICT DO NOTHING
		RETURNING message_id, COALESCE(occurred_at, created_at, received_at)`,
		msg, eid, typ, ws, occ, cre, code, dev, acct, details, raw, keyID, pinHash, pinHint, src, pinTokens).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var id string
				var t time.Time
				if err := rs.Scan(&id, &t); err != nil {
					return err
				}
				inserted[id] = true
				if at != nil {
					at[id] = t
				}
			}
			return rs.Err()
		})
}

func queueInsertQuarantine(b *pgx.Batch, keys *datakeys.Keyring, reqs []*request, inserted map[string]bool) {
	n := len(reqs)
	msg, reason := make([]string, n), make([]string, n)
	raw, keyID := make([][]byte, n), make([]string, n)
	for i, r := range reqs {
		// A reason Postgres refused would lose the delivery it explains.
		msg[i], reason[i] = r.d.MessageID, lifecycle.CleanText(r.reason, 1000)
		keyID[i], raw[i] = r.seal(keys, tableQuarantine)
	}
	b.Queue(`INSERT INTO quarantine (message_id, reason, raw, key_id)
		SELECT m, r, b, k FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) AS u(m, r, b, k)
		ON CONFLICT (message_id) DO NOTHING
		RETURNING message_id`, msg, reason, raw, keyID).
		Query(collectInserted(inserted))
}

// differentBodies returns those of reqs whose message id is stored (as an
// event or in quarantine) with a different body. A request whose message id
// is not stored at all conflicted on its event id: a duplicate. Stored
// bodies are compared opened (bodies.go); one that does not open (its key
// was removed) cannot be compared, so the new body is kept in quarantine.
func (s *Store) differentBodies(ctx context.Context, tx pgx.Tx, reqs []*request) ([]*request, error) {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.d.MessageID
	}
	rs, err := tx.Query(ctx, `SELECT 'events', message_id, key_id, raw FROM events WHERE message_id = ANY($1)
		UNION ALL SELECT 'quarantine', message_id, key_id, raw FROM quarantine WHERE message_id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	stored := map[string][][]byte{}
	for rs.Next() {
		var table, m string
		var keyID *string
		var raw []byte
		if err := rs.Scan(&table, &m, &keyID, &raw); err != nil {
			rs.Close()
			return nil, err
		}
		body, err := OpenBody(s.cfg.Keys, table, m, keyID, raw)
		if err != nil {
			s.cfg.Logger.WarnContext(ctx, "stored body cannot be compared with a redelivery; keeping the redelivery in quarantine",
				"message_id", m, "table", table, "error", openError(err))
			body = nil
		}
		stored[m] = append(stored[m], body)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, err
	}
	var out []*request
	for _, r := range reqs {
		bodies, ok := stored[r.d.MessageID]
		if !ok || slices.ContainsFunc(bodies, func(b []byte) bool { return b != nil && bytes.Equal(b, r.d.Body) }) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// quarantineReused keeps bodies signed under a message id that another body
// has: in quarantine, under the message id and a hash of the body, so that
// Seam's retries of it are duplicates and a third body is kept too.
func (s *Store) quarantineReused(ctx context.Context, tx pgx.Tx, reqs []*request, results map[*request]lifecycle.Result) error {
	keys := make([]*request, len(reqs))
	inserted := map[string]bool{}
	for i, r := range reqs {
		sum := sha256.Sum256(r.d.Body)
		keys[i] = &request{d: lifecycle.Delivery{MessageID: r.d.MessageID + "#" + hex.EncodeToString(sum[:8]), Body: r.d.Body},
			reason: lifecycle.QuarantineMessageIDReused}
	}
	b := &pgx.Batch{}
	queueInsertQuarantine(b, s.cfg.Keys, keys, inserted)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	for i, r := range reqs {
		out := lifecycle.Duplicate
		if inserted[keys[i].d.MessageID] {
			out = lifecycle.Quarantined
			s.cfg.Logger.WarnContext(ctx, "message id reused with a different body; kept in quarantine",
				"message_id", r.d.MessageID, "quarantine_key", keys[i].d.MessageID)
		}
		results[r] = lifecycle.Result{Outcome: out, Reason: lifecycle.QuarantineMessageIDReused}
	}
	return nil
}

func collectInserted(inserted map[string]bool) func(pgx.Rows) error {
	return func(rs pgx.Rows) error {
		for rs.Next() {
			var id string
			if err := rs.Scan(&id); err != nil {
				return err
			}
			inserted[id] = true
		}
		return rs.Err()
	}
}
