package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

// A lock's reports that carry a PIN but name no managed code (an unlock
// without access_code_id, an unmanaged code appearing) are matched with the
// codes on the same lock that carried the same PIN. The codes' PINs come
// from their own access_code.* events; an unmanaged code's own events never
// count as a managed code's.
//
// Across data keys (migration 00011): pin_hash is keyed by the data key that
// sealed its row, so two rows hashed under different keys never share it.
// A report arriving is matched from its PIN in clear, hashed under every
// configured key (pinMatchedCodes, on events_pin_idx). A code's history,
// loaded without any PIN in clear, is matched on pin_tokens: a token per
// key configured when the row was written or re-keyed, naming the lock
// (pinToken). Two rows carry the same PIN on the same lock when their token
// sets overlap, which holds through a rotation: a row written during it has
// tokens under the old key and the new one. A row from before the column
// counts its own key's token, computed from pin_hash (pinSetSQL), and rekey
// gives it the rest.

// pinSourceSQL selects the events whose PIN is a managed code's.
const pinSourceSQL = `event_type LIKE 'access_code.%' AND event_type NOT LIKE 'access_code.unmanaged.%'`

// pinSourceOf is pinSourceSQL on the events row named a.
func pinSourceOf(a string) string {
	return a + `.event_type LIKE 'access_code.%' AND ` + a + `.event_type NOT LIKE 'access_code.unmanaged.%'`
}

// pinReportOf selects, on the events row named a, a lock's reports matched
// by PIN (lifecycle.IsPINReport).
func pinReportOf(a string) string {
	return `((` + a + `.event_type = 'lock.unlocked' AND ` + a + `.access_code_id IS NULL) OR ` +
		a + `.event_type = 'access_code.unmanaged.created')`
}

// pinMatchedOf is the part of events_pin_tokens_idx's predicate every
// lookup on it repeats (with pinSourceOf or pinReportOf, which imply the
// rest). Not device_id IS NOT NULL: see migration 00011.
func pinMatchedOf(a string) string {
	return a + `.pin_hash IS NOT NULL`
}

// pinSetSQL is the token set of the events row named a: pin_tokens, or for
// a row from before them its own key's token, computed as pinToken does
// (decode(..., 'escape') of the id with its backslashes doubled is its
// bytes). It is events_pin_tokens_idx's expression, spelt exactly so that
// the planner uses the index.
func pinSetSQL(a string) string {
	return `COALESCE(` + a + `.pin_tokens, ARRAY[sha256(decode(replace(` + a + `.device_id, '\', '\\'), 'escape') || ` + a + `.pin_hash)])`
}

// pinToken is a PIN's token on a lock under one key: sha256 of the lock's
// id and the PIN's keyed hash under that key (the hash, fixed-length, last).
// Keyed through the hash, it tells nothing of the PIN without the key.
func pinToken(deviceID string, sum []byte) []byte {
	h := sha256.New()
	h.Write([]byte(deviceID))
	h.Write(sum)
	return h.Sum(nil)
}

// pinTokens returns the tokens of pin on deviceID under every configured
// key (nil without a lock or a PIN).
func pinTokens(keys *datakeys.Keyring, deviceID, pin string) [][]byte {
	if deviceID == "" {
		return nil
	}
	var out [][]byte
	for _, h := range keys.PinHashes(pin) {
		out = append(out, pinToken(deviceID, h.Sum))
	}
	return out
}

// pinMatched reports whether an event's PIN is matched at all, and so gets
// tokens: a lock's report by PIN (lifecycle.IsPINReport), or a managed
// code's own event (pinSourceSQL).
func pinMatched(p *lifecycle.Parsed) bool {
	return lifecycle.IsPINReport(p) || (strings.HasPrefix(p.EventType, "access_code.") && !strings.HasPrefix(p.EventType, "access_code.unmanaged."))
}

// historyOf is historySQL on the events row named a.
func historyOf(a string) string {
	return `(` + a + `.event_type LIKE 'access_code.%' OR ` + a + `.event_type LIKE 'codewatch.%' OR ` +
		a + `.event_type IN ('lock.unlocked', 'lock.access_denied'))`
}

// pinMatchedCodes returns the codes on the reports' locks whose PIN the
// reports carry, hashed under every configured key (so that rows hashed
// before a rotation match until rekey renews them), each with the reports
// that matched it.
func (s *Store) pinMatchedCodes(ctx context.Context, tx pgx.Tx, reports []*request) (map[string][]*request, error) {
	var devs []string
	var sums [][]byte
	var idx []int32
	for i, r := range reports {
		pin, ok := datakeys.ExtractPIN(r.d.Body)
		if !ok || r.parsed.DeviceID == "" {
			continue
		}
		for _, h := range s.cfg.Keys.PinHashes(pin) {
			devs, sums, idx = append(devs, r.parsed.DeviceID), append(sums, h.Sum), append(idx, int32(i))
		}
	}
	if len(devs) == 0 {
		return nil, nil
	}
	rs, err := tx.Query(ctx, `SELECT DISTINCT e.access_code_id, p.i
		FROM unnest($1::text[], $2::bytea[], $3::int[]) AS p(dev, h, i)
		JOIN events e ON e.device_id = p.dev AND e.pin_hash = p.h
		WHERE e.pin_hash IS NOT NULL AND e.device_id IS NOT NULL
			AND e.access_code_id IS NOT NULL AND `+pinSourceSQL, devs, sums, idx)
	if err != nil {
		return nil, err
	}
	out := map[string][]*request{}
	var code string
	var i int32
	_, err = pgx.ForEachRow(rs, []any{&code, &i}, func() error {
		out[code] = append(out[code], reports[i])
		return nil
	})
	return out, err
}

// loadPINReportsSQL reads, for each code of $1, the lock's reports that
// carry its PIN on its lock: from the code's PIN-carrying events (by
// events_access_code_idx) their tokens, per lock, then one probe of
// events_pin_tokens_idx for the reports. The tokens name the lock: no
// device_id condition is needed, and none is written, so that the planner
// cannot prefer reading every PIN of the lock (events_pin_idx). For each
// report found (rare: an unlock by a code's PIN that Seam tied to no code,
// an unmanaged code with it), samePINSQL: it names l so that it runs after
// l is found, and only then (on p's PIN alone, the generic plan ran it for
// every code refolded; TestPINMatchPlans).
var loadPINReportsSQL = `WITH p AS (
		SELECT c.access_code_id, c.device_id, array_agg(DISTINCT t) AS pins
		FROM events c, unnest(` + pinSetSQL("c") + `) AS t
		WHERE c.access_code_id = ANY($1) AND ` + historyOf("c") + ` AND ` + pinSourceOf("c") + `
			AND ` + pinMatchedOf("c") + `
		GROUP BY c.access_code_id, c.device_id)
` + pinReportsOfP

// pinReportsOfP reads, for each code of the CTE p (its PIN tokens per
// lock), the lock's reports carrying one of them: the tail of
// loadPINReportsSQL and of history.go's loadRelevantPINReportsSQL.
var pinReportsOfP = `
	SELECT p.access_code_id, l.event_id, l.event_type,
		COALESCE(l.occurred_at, l.created_at, l.received_at),
		COALESCE(l.workspace_id, ''), COALESCE(l.device_id, ''), COALESCE(l.connected_account_id, ''),
		l.details, l.source, COALESCE(l.access_code_id, ''), same.codes
	FROM p
	JOIN events l ON ` + pinSetSQL("l") + ` && p.pins
	CROSS JOIN LATERAL (` + samePINSQL + `) same
	WHERE ` + pinMatchedOf("l") + ` AND ` + pinReportOf("l")

// samePINSQL lists, for a report l matched with code p, the other managed
// codes on l's lock whose own events carried l's PIN (one more probe of
// events_pin_tokens_idx), each with its first event and its deletion
// (events_access_code_idx): whether it was on the lock at the report is
// lifecycle's to judge. NULL for none.
var samePINSQL = `SELECT json_agg(json_build_object('access_code_id', q.access_code_id,
		'since', (SELECT min(COALESCE(o.occurred_at, o.created_at, o.received_at)) FROM events o
			WHERE o.access_code_id = q.access_code_id AND ` + historyOf("o") + ` AND ` + pinSourceOf("o") + `),
		'deleted_at', (SELECT min(COALESCE(o.occurred_at, o.created_at, o.received_at)) FROM events o
			WHERE o.access_code_id = q.access_code_id AND ` + historyOf("o") + `
				AND o.event_type IN ('access_code.deleted', 'access_code.deleted_external_to_seam')))
		ORDER BY q.access_code_id) AS codes
	FROM (SELECT DISTINCT s.access_code_id FROM events s
		WHERE ` + pinSetSQL("s") + ` && ` + pinSetSQL("l") + `
			AND ` + pinMatchedOf("s") + ` AND ` + pinSourceOf("s") + `
			AND s.access_code_id IS NOT NULL AND s.access_code_id <> p.access_code_id) q`

// queueLoadPINReports reads, for each of ids, the lock's reports that carry
// its PIN on its lock, marked PINMatch, with the other codes on the lock
// that share the PIN (the fold then judges them).
func queueLoadPINReports(b *pgx.Batch, ids []string, evs map[string][]lifecycle.Event) {
	queuePINReports(b, loadPINReportsSQL, evs, ids)
}

// queuePINReports queues sql, loadPINReportsSQL or a variant of it, and
// reads its reports into evs.
func queuePINReports(b *pgx.Batch, sql string, evs map[string][]lifecycle.Event, args ...any) {
	b.Queue(sql, args...).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var code string
				var e lifecycle.Event
				var details, same []byte
				if err := rs.Scan(&code, &e.EventID, &e.Type, &e.OccurredAt, &e.WorkspaceID, &e.DeviceID,
					&e.ConnectedAccountID, &details, &e.Source, &e.AccessCodeID, &same); err != nil {
					return err
				}
				e.Details, e.PINMatch = details, true
				if len(same) > 0 {
					if err := json.Unmarshal(same, &e.SamePIN); err != nil {
						return err
					}
				}
				evs[code] = append(evs[code], e)
			}
			return rs.Err()
		})
}

// CodePINHashes returns the keyed hashes of the PIN a code's own events
// carried (for matching the lock's unmanaged codes during a lookup).
func (s *Store) CodePINHashes(ctx context.Context, id string) ([][]byte, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, `SELECT DISTINCT pin_hash FROM events
		WHERE access_code_id = $1 AND `+historySQL+` AND `+pinSourceSQL+` AND pin_hash IS NOT NULL`, id)
	if err != nil {
		return nil, unavailable(err)
	}
	sums, err := pgx.CollectRows(rs, pgx.RowTo[[]byte])
	if err != nil {
		return nil, unavailable(err)
	}
	return sums, nil
}

// byteaArray is sums as the text of a bytea[] (nil for none), for one row
// of an unnest: hex, so nothing in it needs quoting but the backslash.
func byteaArray(sums [][]byte) *string {
	if len(sums) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range sums {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"\\x`)
		b.WriteString(hex.EncodeToString(s))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	out := b.String()
	return &out
}
