package postgres

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// Ingest refolds a code from what can change its verdict, not from its whole
// history (issue 21, point 1; lifecycle.Relevant states the rule): the
// code's own events (events_own_idx, migration 00013), and of the lock's
// events that name it, those after its first deletion or deletion request
// (the evidence floor) that lifecycle.Relevant keeps, plus those newer than
// the row's last_event_at; the lock's reports matched by PIN only for a
// code being deleted, or with an event of its own in the batch (whose PIN
// may match older reports). last_event_at is kept as the newest time
// folded: the row's, what was read, and the batch's reports by PIN. A
// staff code's thousands of unlocks then cost nothing per event; a row
// never folded (just created) reads its whole history, as replay does.
// TestIncrementalRefoldIsTheWholeFold holds the rows so made equal to
// replay's, which folds every event.

// ownOf selects a code's own events (ownSQL) on the events row named a: the
// predicate of events_own_idx, repeated so that the planner uses it.
func ownOf(a string) string {
	return `(` + a + `.event_type LIKE 'access_code.%' OR ` + a + `.event_type LIKE 'codewatch.%')`
}

// lockOf selects the lock's events in a code's history on the events row
// named a (historySQL less ownSQL).
func lockOf(a string) string {
	return a + `.event_type IN ('lock.unlocked', 'lock.access_denied')`
}

// floorOf is lifecycle.EvidenceFloor of the code a.access_code_id, from its
// own events (events_own_idx); NULL without a deletion or request.
func floorOf(a string) string {
	return `(SELECT min(COALESCE(o.occurred_at, o.created_at, o.received_at)) FROM events o
		WHERE o.access_code_id = ` + a + `.access_code_id AND ` + ownOf("o") + `
			AND o.event_type IN ('` + lifecycle.TypeDeleted + `', '` + lifecycle.TypeDeletedExternally + `', '` +
		lifecycle.TypeDeletionRequested + `'))`
}

// eventCols are the columns a history loader reads of the events row e, in
// scanEvent's order.
const eventCols = `e.event_id, e.event_type, COALESCE(e.occurred_at, e.created_at, e.received_at),
	COALESCE(e.workspace_id, ''), COALESCE(e.device_id, ''), COALESCE(e.connected_account_id, ''),
	e.details, e.source, e.message_id`

// loadOwnSQL reads the own events of the codes $1 (events_own_idx).
var loadOwnSQL = `SELECT e.access_code_id, ` + eventCols + `
	FROM events e WHERE e.access_code_id = ANY($1) AND ` + ownOf("e")

// ownLocksOf selects the locks the own events of the code a.access_code_id
// name (lifecycle's ownFamily: not the unmanaged codes' events), through
// events_own_idx.
func ownLocksOf(a string) string {
	return `SELECT DISTINCT o.device_id FROM events o
		WHERE o.access_code_id = ` + a + `.access_code_id AND ` + ownOf("o") + `
			AND o.event_type NOT LIKE 'access_code.unmanaged.%' AND o.device_id IS NOT NULL`
}

// newestUnlock is the newest unlock of the code a.access_code_id after
// f.floor with cond: on one lock or on none, a range of events_unlock_idx
// (migration 00013) read backwards from the newest, one row; on any lock,
// events_access_code_idx read backwards, passing over the code's refusals
// only.
func newestUnlock(cond string) string {
	// On one lock (or none), the order is events_unlock_idx's, device first
	// (one value here): the planner then reads that index rather than
	// guess that events_access_code_idx soon finds such a row.
	order := `e.access_code_id DESC, e.device_id DESC, e.occurred_at DESC, e.event_id DESC`
	if cond == "" {
		order = `e.occurred_at DESC, e.event_id DESC`
	}
	return `(SELECT ` + eventCols + ` FROM events e
		WHERE e.access_code_id = a.access_code_id AND ` + historyOf("e") + `
			AND e.event_type = '` + lifecycle.TypeLockUnlocked + `' AND e.occurred_at > f.floor` + cond + `
		ORDER BY ` + order + ` LIMIT 1)`
}

// loadLockSQL reads, for the locked codes $1, the lock's events that name
// them and can matter (see the top of this file): for a row never folded,
// all of them; else those newer than its last_event_at, those without an
// occurred_at after the floor or the last event (rare: ordered by their
// created_at, they fall outside the index's order), and the newest unlocks
// after the floor (lifecycle.Relevant): without a lock, on each lock the
// code's own events name, and on any lock when they name none. Each branch is a range of
// events_access_code_idx for the one code. A row may come twice (Fold
// keeps one).
//
// The codes are reached from $1 by their primary key: filtered with
// "a.access_code_id = ANY($1)" instead, the plans chosen while the table's
// statistics were young (since migration 00015's partial indexes on
// access_codes) read codes beyond $1, and refolds slowed with the table's
// size: 3,000 deletions took 73 s instead of 3 s in
// TestConcurrentSweepersFlagEachCodeOnce.
var loadLockSQL = `SELECT a.access_code_id, l.*
	FROM unnest($1::text[]) AS ids(id)
	JOIN access_codes a ON a.access_code_id = ids.id
	CROSS JOIN LATERAL ` + floorOf("a") + ` AS f(floor)
	CROSS JOIN LATERAL (
		SELECT ` + eventCols + ` FROM events e
			WHERE a.last_event_at IS NULL AND e.access_code_id = a.access_code_id AND ` + historyOf("e") + ` AND ` + lockOf("e") + `
		UNION ALL
		SELECT ` + eventCols + ` FROM events e
			WHERE e.access_code_id = a.access_code_id AND ` + historyOf("e") + ` AND ` + lockOf("e") + `
				AND e.occurred_at > a.last_event_at
		UNION ALL
		SELECT ` + eventCols + ` FROM events e
			WHERE e.access_code_id = a.access_code_id AND ` + historyOf("e") + ` AND ` + lockOf("e") + `
				AND e.occurred_at IS NULL
				AND COALESCE(e.created_at, e.received_at) > COALESCE(LEAST(f.floor, a.last_event_at), '-infinity')
		UNION ALL
		SELECT n.* FROM ` + newestUnlock("") + ` n WHERE NOT EXISTS (` + ownLocksOf("a") + `)
		UNION ALL ` + newestUnlock(" AND e.device_id IS NULL") + `
		UNION ALL
		SELECT n.* FROM (` + ownLocksOf("a") + `) d
			CROSS JOIN LATERAL ` + newestUnlock(" AND e.device_id = d.device_id") + ` n
	) l`

// loadRelevantPINReportsSQL is loadPINReportsSQL for the codes of $1 that
// may have relevant reports: a row never folded (all of its reports), a
// code being deleted or asked to be (its floor exists: its reports after
// the floor), or one of $2, the codes with an event of their own in the
// batch (whose PIN may now match reports stored before it). Of the rest,
// only the reports newer than the row's last event, which the floor's
// condition includes.
var loadRelevantPINReportsSQL = `WITH a AS MATERIALIZED (
		-- One row per code, its floor read once (joined after its events,
		-- the floor was read once per PIN event, and cost more than the
		-- rest of the statement).
		SELECT a.access_code_id, a.last_event_at, f.floor
		FROM unnest($1::text[]) AS ids(id)
		JOIN access_codes a ON a.access_code_id = ids.id -- by primary key, as loadLockSQL
		CROSS JOIN LATERAL ` + floorOf("a") + ` AS f(floor)
		WHERE a.last_event_at IS NULL OR a.deleted_at IS NOT NULL OR a.deletion_request IS NOT NULL
			OR a.access_code_id = ANY($2)),
	p AS (
		SELECT c.access_code_id, c.device_id, array_agg(DISTINCT t) AS pins,
			min(a.last_event_at) AS last, min(a.floor) AS floor, bool_or(a.last_event_at IS NULL) AS whole
		FROM a
		JOIN events c ON c.access_code_id = a.access_code_id
		CROSS JOIN LATERAL unnest(` + pinSetSQL("c") + `) AS t
		WHERE ` + historyOf("c") + ` AND ` + pinSourceOf("c") + ` AND ` + pinMatchedOf("c") + `
		GROUP BY c.access_code_id, c.device_id)` + pinReportsOfP + `
		AND (p.whole OR COALESCE(l.occurred_at, l.created_at, l.received_at) > LEAST(p.floor, p.last))`

// queueLoadRelevant reads, for ingest, what can change the verdict of each
// of codes (locked first, by queueLockCodes): own is the batch's codes with
// an event of their own.
func queueLoadRelevant(b *pgx.Batch, codes []string, own map[string]lifecycle.CodeRef, evs map[string][]lifecycle.Event) {
	withOwn := make([]string, 0, len(own))
	for id := range own {
		withOwn = append(withOwn, id)
	}
	b.Queue(loadOwnSQL, codes).Query(scanEvents(evs))
	b.Queue(loadLockSQL, codes).Query(scanEvents(evs))
	queuePINReports(b, loadRelevantPINReportsSQL, evs, codes, withOwn)
}

// scanEvents appends each row (the code's id, then eventCols) to evs.
func scanEvents(evs map[string][]lifecycle.Event) func(pgx.Rows) error {
	return func(rs pgx.Rows) error {
		for rs.Next() {
			var e lifecycle.Event
			var code string
			var details []byte
			if err := rs.Scan(&code, &e.EventID, &e.Type, &e.OccurredAt, &e.WorkspaceID, &e.DeviceID,
				&e.ConnectedAccountID, &details, &e.Source, &e.MessageID); err != nil {
				return err
			}
			e.AccessCodeID = code
			e.Details = details
			evs[code] = append(evs[code], e)
		}
		return rs.Err()
	}
}

// laterByPIN returns, per code, the newest time among the batch's reports
// matched by its PIN that were stored (at: their times as inserted): what
// they add to the code's last_event_at when its reports are not read.
func laterByPIN(byPIN map[string][]*request, at map[string]time.Time) map[string]*time.Time {
	out := map[string]*time.Time{}
	for code, reports := range byPIN {
		for _, r := range reports {
			if t, ok := at[r.d.MessageID]; ok {
				out[code] = lifecycle.Latest(out[code], &t)
			}
		}
	}
	return out
}
