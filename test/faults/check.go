package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// result is one scenario's figures and what it found wrong.
type result struct {
	name       string
	sent       int // messages (svix-ids × sends) the driver started
	events     int // distinct events among them
	codes      int
	acked      int
	gaveUp     int
	retries    int
	lost       int
	duplicated int
	p50, p99   time.Duration
	maxLatency time.Duration
	maxLag     time.Duration
	maxIn      int64
	recovery   time.Duration
	faults     int
	statuses   map[int]int
	netErrs    map[string]int
	hung       int
	trouble    int // distinct deletion.needs_troubleshooting alerts received
	resolved   int
	redeliv    int            // alert ids received more than once (explained)
	answerLost int            // events stored whose "stored" answer was lost
	dupAnswers map[string]int // acknowledged as duplicate, by duplicate kind
	shuffled   int
	elapsed    time.Duration
	notes      []string
	violations []string
	void       bool
	skipped    string // why the scenario could not run here
}

func (r *result) fail(format string, a ...any) {
	r.violations = append(r.violations, fmt.Sprintf(format, a...))
}

func (r *result) note(format string, a ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, a...))
}

// checkLedger: every planned message was sent, and every sent message ended
// acknowledged or given up. A run whose ledger does not balance proves
// nothing: it is void.
func checkLedger(r *result, d *driver, dels []*delivery) {
	started, acked, gaveUp, retries := 0, 0, 0, 0
	evs := map[*event]bool{}
	for _, del := range dels {
		if del.started {
			started++
			evs[del.ev] = true
		}
		if del.acked {
			acked++
		}
		if del.gaveUp {
			gaveUp++
		}
		if del.acked && del.gaveUp {
			r.fail("ledger: message %s both acknowledged and given up", del.msgID)
		}
		if del.attempts > 1 {
			retries += del.attempts - 1
		}
	}
	r.sent, r.acked, r.gaveUp, r.retries, r.events = started, acked, gaveUp, retries, len(evs)
	bad := false
	if started != len(dels) {
		r.fail("ledger: %d messages planned, %d sent", len(dels), started)
		bad = true
	}
	if acked+gaveUp != started {
		r.fail("ledger: acknowledged %d + given up %d != sent %d (%d outstanding)", acked, gaveUp, started, started-acked-gaveUp)
		bad = true
	}
	if int64(started) != d.sent.Load() || int64(acked) != d.acked.Load() || int64(gaveUp) != d.gaveUp.Load() || int64(retries) != d.retries.Load() {
		r.fail("ledger: per-message records (sent %d, acked %d, gave up %d, retries %d) disagree with counters (%d, %d, %d, %d)",
			started, acked, gaveUp, retries, d.sent.Load(), d.acked.Load(), d.gaveUp.Load(), d.retries.Load())
		bad = true
	}
	if bad {
		r.void = true
	}
	if gaveUp > 0 {
		n := 0
		for _, del := range dels {
			if del.gaveUp && n < 5 {
				r.note("gave up on %s (%s, %d attempts): %s", del.msgID, del.ev.typ, del.attempts, del.lastErr)
				n++
			}
		}
		r.fail("availability: %d messages given up after the %s retry budget", gaveUp, d.budget)
	}
}

// The checks query the domain's tables themselves, not through the store:
// an independent oracle keeps its own queries (issue 20).

// querier is what the checks need of a connection (*pgx.Conn, *pgxpool.Pool).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// waitOutboxDrained waits, up to limit, for the outbox to drain: every
// alert delivered and recorded.
func waitOutboxDrained(ctx context.Context, res *result, conn querier, limit time.Duration) {
	drainT0 := time.Now()
	var pending int
	for {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM alert_deliveries WHERE status = 'pending'`).Scan(&pending); err != nil {
			res.fail("check: count pending alerts: %v", err)
			break
		}
		if pending == 0 {
			break
		}
		if time.Since(drainT0) > limit {
			res.fail("alerts: %d deliveries still pending %s after the load", pending, limit)
			break
		}
		if sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) != nil {
			break
		}
	}
	if d := time.Since(drainT0); d > 5*time.Second {
		res.note("alert outbox took %s to drain", d.Round(100*time.Millisecond))
	}
}

type storedEvent struct {
	messageID, eventID, codeID string
}

// checkStore: every acknowledged event is stored exactly once, under one of
// the svix-ids it was sent with, and nothing else is stored.
func checkStore(ctx context.Context, r *result, conn querier, dels []*delivery) (stored map[string]bool, err error) {
	rows, err := conn.Query(ctx, `SELECT message_id, event_id, COALESCE(access_code_id, '') FROM events`)
	if err != nil {
		return nil, err
	}
	var all []storedEvent
	var se storedEvent
	if _, err := pgx.ForEachRow(rows, []any{&se.messageID, &se.eventID, &se.codeID}, func() error {
		all = append(all, se)
		return nil
	}); err != nil {
		return nil, err
	}
	var quarantined int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&quarantined); err != nil {
		return nil, err
	}
	if quarantined > 0 {
		r.fail("store: %d deliveries quarantined (every event sent was valid)", quarantined)
	}

	byEvent := map[string]*event{}
	msgIDs := map[string]map[string]bool{} // event id -> svix-ids it was sent under
	for _, d := range dels {
		byEvent[d.ev.id] = d.ev
		if msgIDs[d.ev.id] == nil {
			msgIDs[d.ev.id] = map[string]bool{}
		}
		msgIDs[d.ev.id][d.msgID] = true
	}
	perEvent := map[string]int{}
	perMsg := map[string]int{}
	phantom := 0
	for _, s := range all {
		perEvent[s.eventID]++
		perMsg[s.messageID]++
		ev, ok := byEvent[s.eventID]
		switch {
		case !ok:
			phantom++
			if phantom <= 3 {
				r.fail("store: event %s (message %s) stored but never sent", s.eventID, s.messageID)
			}
		case !msgIDs[s.eventID][s.messageID]:
			r.fail("store: event %s stored under svix-id %s, which it was never sent with", s.eventID, s.messageID)
		case s.codeID != ev.code.id:
			r.fail("store: event %s stored for code %q, sent for %q", s.eventID, s.codeID, ev.code.id)
		}
	}
	dup := phantom
	for id, n := range perEvent {
		if n > 1 {
			dup += n - 1
			r.fail("store: event %s stored %d times", id, n)
		}
	}
	for id, n := range perMsg {
		if n > 1 {
			dup += n - 1
			r.fail("store: svix-id %s stored %d times", id, n)
		}
	}
	r.duplicated = dup

	stored = map[string]bool{}
	for id := range perEvent {
		stored[id] = true
	}
	// Acknowledged but not stored: lost.
	ackedEvents := map[*event]bool{}
	for _, d := range dels {
		if d.acked {
			ackedEvents[d.ev] = true
		}
	}
	lost := 0
	for ev := range ackedEvents {
		if !stored[ev.id] {
			lost++
			if lost <= 5 {
				r.fail("store: event %s (%s, code %s) acknowledged but not stored", ev.id, ev.typ, ev.code.id)
			}
		}
	}
	r.lost = lost

	// What the service said: at most one "stored" answer per event, and an
	// event already acknowledged is a duplicate when it comes again.
	freshAnswers := map[*event]int{}
	for _, d := range dels {
		if !d.acked {
			continue
		}
		if d.ackQuarantined {
			r.fail("answer: message %s acknowledged as quarantined", d.msgID)
		}
		if !d.ackDuplicate {
			freshAnswers[d.ev]++
		}
		if d.ackDuplicate {
			continue
		}
		for _, o := range d.ev.deliveries {
			if o != d && o.acked && o.ackAt.Before(d.firstSend) {
				r.fail("answer: message %s (%s) of event %s acknowledged as new although %s was acknowledged before it was sent",
					d.msgID, d.dup, d.ev.id, o.msgID)
				break
			}
		}
	}
	for ev, n := range freshAnswers {
		if n > 1 {
			r.fail("answer: event %s acknowledged as newly stored %d times", ev.id, n)
		}
	}
	// Stored events whose "stored" answer never arrived: the fault struck
	// between commit and answer, and a retry was answered as a duplicate.
	for ev := range ackedEvents {
		if freshAnswers[ev] == 0 && stored[ev.id] {
			r.answerLost++
		}
	}
	for _, d := range dels {
		if d.acked && d.ackDuplicate {
			r.dupAnswers[d.dup]++
		}
	}
	return stored, nil
}

// expectedEvents is the driver's own record of a code's events that the
// service holds: acknowledged ones, plus any given up on that were stored
// anyway (their answer was lost).
func expectedEvents(c *code, stored map[string]bool) []lifecycle.Event {
	var out []lifecycle.Event
	for _, e := range c.events {
		acked := false
		for _, d := range e.deliveries {
			acked = acked || d.acked
		}
		if acked || stored[e.id] {
			out = append(out, e.lifecycleEvent())
		}
	}
	return out
}

// intended is the state each lifecycle kind ends in once all its events are
// in: an oracle independent of Fold.
var intended = map[string]lifecycle.DeletionState{
	kindRemoved:         lifecycle.Removed,
	kindDelayed:         lifecycle.Delayed,
	kindFailed:          lifecycle.Failed,
	kindFailThenRemoved: lifecycle.Removed,
}

// checkStates: each code's deletion_state is lifecycle.Fold of its events.
func checkStates(ctx context.Context, r *result, conn querier, codes []*code, stored map[string]bool) error {
	type row struct {
		state string
		needs bool
	}
	rows, err := conn.Query(ctx, `SELECT access_code_id, deletion_state, needs_troubleshooting FROM access_codes`)
	if err != nil {
		return err
	}
	db := map[string]row{}
	var id string
	var x row
	if _, err := pgx.ForEachRow(rows, []any{&id, &x.state, &x.needs}, func() error {
		db[id] = x
		return nil
	}); err != nil {
		return err
	}
	bad := 0
	for _, c := range codes {
		evs := expectedEvents(c, stored)
		if len(evs) == 0 {
			continue
		}
		want := lifecycle.Fold(evs).DeletionState
		if len(evs) == len(c.events) && want != intended[c.kind] {
			r.fail("fold: code %s (%s, shuffled %v): Fold of all its events says %s, the lifecycle ends %s",
				c.id, c.kind, c.shuffled, want, intended[c.kind])
		}
		wantNeeds := want == lifecycle.Delayed || want == lifecycle.Failed
		got, ok := db[c.id]
		switch {
		case !ok:
			bad++
			r.fail("state: code %s (%s) has %d acknowledged events and no access_codes row", c.id, c.kind, len(evs))
		case got.state != string(want):
			bad++
			if bad <= 5 {
				r.fail("state: code %s (%s, shuffled %v): deletion_state %s, Fold of its %d acknowledged events says %s",
					c.id, c.kind, c.shuffled, got.state, len(evs), want)
			}
		case got.needs != wantNeeds:
			bad++
			if bad <= 5 {
				r.fail("state: code %s (%s): needs_troubleshooting %v, want %v", c.id, want, got.needs, wantNeeds)
			}
		}
	}
	if bad > 5 {
		r.fail("state: %d codes in all with a wrong row", bad)
	}
	return nil
}

// troubleOrdered reports whether the code was in trouble at a commit for
// certain: its deletion and its failure were acknowledged before its removal
// was first sent.
func troubleOrdered(c *code) bool {
	// earliest is the earliest time at gives, over the deliveries of the
	// code's events of type typ for which it gives one (zero: none).
	earliest := func(typ string, at func(d *delivery) (time.Time, bool)) time.Time {
		var t time.Time
		for _, e := range c.events {
			if e.typ != typ {
				continue
			}
			for _, d := range e.deliveries {
				if dt, ok := at(d); ok && (t.IsZero() || dt.Before(t)) {
					t = dt
				}
			}
		}
		return t
	}
	acked := func(d *delivery) (time.Time, bool) { return d.ackAt, d.acked }
	sent := func(d *delivery) (time.Time, bool) { return d.firstSend, d.started }
	del := earliest(lifecycle.TypeDeleted, acked)
	fail := earliest(lifecycle.TypeFailedToRemove, acked)
	rem := earliest(lifecycle.TypeRemovedFromDevice, sent)
	return !del.IsZero() && !fail.IsZero() && !rem.IsZero() && del.Before(rem) && fail.Before(rem)
}

// alertExpectation is how many alerts of each type a code may get.
type alertExpectation struct {
	troubleMin, troubleMax int
	resolvedEqualsTrouble  bool
}

func expectAlerts(c *code, stored map[string]bool) alertExpectation {
	evs := expectedEvents(c, stored)
	st := lifecycle.Fold(evs).DeletionState
	hasTrouble := false
	for _, e := range evs {
		if e.Type == lifecycle.TypeDelayInRemoving || e.Type == lifecycle.TypeFailedToRemove {
			hasTrouble = true
		}
	}
	switch {
	case st == lifecycle.Delayed || st == lifecycle.Failed:
		// One trouble, never resolved.
		return alertExpectation{troubleMin: 1, troubleMax: 1}
	case hasTrouble && troubleOrdered(c):
		// Failed, then removed: one alert and its resolution.
		return alertExpectation{troubleMin: 1, troubleMax: 1, resolvedEqualsTrouble: true}
	case hasTrouble:
		// The removal may have been committed with or before the failure;
		// then there was never trouble to alert on.
		return alertExpectation{troubleMin: 0, troubleMax: 1, resolvedEqualsTrouble: true}
	}
	return alertExpectation{resolvedEqualsTrouble: true}
}

// checkAlerts: the outbox drained, every alert arrived once, and each code
// got the alerts its events call for.
func checkAlerts(ctx context.Context, r *result, conn querier, codes []*code, stored map[string]bool,
	receipts []receipt, bad []string, crashy bool) error {
	for i, b := range bad {
		if i < 5 {
			r.fail("alerts: %s", b)
		}
	}
	if len(bad) > 5 {
		r.fail("alerts: %d bad alert deliveries in all", len(bad))
	}
	type dbAlert struct {
		code, typ string
		seq       int64
		attempts  int
		status    string
	}
	rows, err := conn.Query(ctx, `SELECT a.alert_id::text, a.access_code_id, a.type, a.sequence,
			COALESCE(d.attempts, 0), COALESCE(d.status, 'none')
		FROM alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.alert_id AND d.sink = 'webhook'`)
	if err != nil {
		return err
	}
	outbox := map[string]dbAlert{}
	var id string
	var a dbAlert
	if _, err := pgx.ForEachRow(rows, []any{&id, &a.code, &a.typ, &a.seq, &a.attempts, &a.status}, func() error {
		outbox[id] = a
		return nil
	}); err != nil {
		return err
	}

	seen := map[string]int{}
	type counts struct{ trouble, resolved, other int }
	perCode := map[string]*counts{}
	for _, rc := range receipts {
		seen[rc.AlertID]++
		if seen[rc.AlertID] > 1 {
			continue
		}
		a, ok := outbox[rc.AlertID]
		if !ok {
			r.fail("alerts: received alert %s that is not in the outbox", rc.AlertID)
			continue
		}
		if a.code != rc.AccessCodeID || a.typ != rc.Type || a.seq != rc.Sequence {
			r.fail("alerts: alert %s arrived as %s #%d for %s, the outbox has %s #%d for %s", rc.AlertID, rc.Type, rc.Sequence, rc.AccessCodeID, a.typ, a.seq, a.code)
		}
		c := perCode[rc.AccessCodeID]
		if c == nil {
			c = &counts{}
			perCode[rc.AccessCodeID] = c
		}
		switch rc.Type {
		case lifecycle.AlertTrouble:
			c.trouble++
			r.trouble++
		case lifecycle.AlertResolved:
			c.resolved++
			r.resolved++
		default:
			c.other++
		}
	}
	// In order: each code's alerts arrive in the order they were raised. A
	// documented repeat (below) comes before the code's next alert, which
	// waits until the earlier one is recorded as delivered: arrival order
	// never goes back to an earlier sequence than one already received.
	last := map[string]int64{}
	for _, rc := range receipts {
		if prev, ok := last[rc.AccessCodeID]; ok && rc.Sequence < prev {
			r.fail("alerts: out of order for code %s: alert #%d (%s, %s) arrived after #%d", rc.AccessCodeID, rc.Sequence, rc.Type, rc.AlertID, prev)
		}
		last[rc.AccessCodeID] = max(last[rc.AccessCodeID], rc.Sequence)
	}
	for id, n := range seen {
		if n < 2 {
			continue
		}
		a := outbox[id]
		// Delivery documents one repeat: an alert sent but not recorded
		// (the process or the database died in between) is sent again
		// with the same alert_id once River retries or rescues its job.
		// Every receipt needs an attempt of its own (attempts are counted
		// before each send).
		if crashy && a.attempts >= n {
			r.redeliv++
			r.note("alert %s (%s) received %d times after a crash; the outbox shows %d attempts (at-least-once, same alert_id)", id, a.typ, n, a.attempts)
			continue
		}
		r.fail("alerts: alert %s (%s, code %s) received %d times (outbox attempts %d)", id, a.typ, a.code, n, a.attempts)
	}
	for id, a := range outbox {
		if a.status == "none" {
			r.fail("alerts: alert %s has no webhook delivery row", id)
		} else if seen[id] == 0 {
			r.fail("alerts: alert %s (%s, code %s) is %s in the outbox and never arrived", id, a.typ, a.code, a.status)
		}
	}

	known := map[string]bool{}
	badCodes := 0
	for _, c := range codes {
		known[c.id] = true
		want := expectAlerts(c, stored)
		got := perCode[c.id]
		if got == nil {
			got = &counts{}
		}
		var why string
		switch {
		case got.trouble < want.troubleMin || got.trouble > want.troubleMax:
			why = fmt.Sprintf("%d deletion.needs_troubleshooting alerts, want %d..%d", got.trouble, want.troubleMin, want.troubleMax)
		case want.resolvedEqualsTrouble && got.resolved != got.trouble:
			why = fmt.Sprintf("%d trouble alerts and %d resolutions", got.trouble, got.resolved)
		case !want.resolvedEqualsTrouble && got.resolved != 0:
			why = fmt.Sprintf("%d resolutions of trouble that is not resolved", got.resolved)
		case got.other != 0:
			why = fmt.Sprintf("%d unexpected alerts (reminders)", got.other)
		}
		if why != "" {
			badCodes++
			if badCodes <= 5 {
				r.fail("alerts: code %s (%s, final %s): %s", c.id, c.kind, lifecycle.Fold(expectedEvents(c, stored)).DeletionState, why)
			}
		}
	}
	if badCodes > 5 {
		r.fail("alerts: %d codes in all with the wrong alerts", badCodes)
	}
	for id := range perCode {
		if !known[id] {
			r.fail("alerts: alert for code %s, which the driver never sent", id)
		}
	}
	return nil
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// recoveryTimes: for each fault's end, the time to the first 2xx after it;
// ok is false when some fault end was never followed by a 2xx.
func recoveryTimes(faultEnds, acks []time.Time) (max time.Duration, ok bool) {
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	ok = true
	for _, fe := range faultEnds {
		i := sort.Search(len(acks), func(i int) bool { return !acks[i].Before(fe) })
		if i == len(acks) {
			ok = false
			continue
		}
		if d := acks[i].Sub(fe); d > max {
			max = d
		}
	}
	return max, ok
}
