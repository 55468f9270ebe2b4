package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// RekeyOptions choose what Rekey re-seals.
type RekeyOptions struct {
	// OnlyClear re-seals only bodies stored in clear by a version before
	// encryption (key_id NULL), found through a partial index: what serve
	// does at start-up. Otherwise every body not under the first key is.
	OnlyClear bool
	// BatchSize caps the rows of one transaction (default 200); a batch
	// also stops at about 8 MiB of bodies.
	BatchSize int
	// Progress, when set, is called after each batch.
	Progress func(RekeyProgress)
}

// RekeyProgress reports a rekey's advance.
type RekeyProgress struct {
	// Table is the table being worked: events, then quarantine.
	Table string
	// Done rows of Table were re-sealed so far, of Total found to need it
	// when the table was started.
	Done, Total int64
	// Unreadable rows could not be opened and were left as they are.
	Unreadable int64
}

// RekeyResult is what a rekey did.
type RekeyResult struct {
	// Resealed counts the rows re-sealed under the first key, per table.
	Resealed map[string]int64
	// Unreadable counts, per key id ("" for a body that did not
	// authenticate), the rows that could not be opened and so still are
	// as they were. Rekey returns an error when there are any.
	Unreadable map[string]int64
	// Refolded counts the codes refolded because the renewed PIN tokens
	// of an event made it match events it did not match before (see
	// rekeyPartners).
	Refolded int64
}

// rekeyMaxBytes bounds the bodies held in memory for one batch (bodies are
// up to 1 MiB; Seam's are a few KiB).
const rekeyMaxBytes = 8 << 20

// rekeyPasses bounds the passes over a table: a pass skips rows another
// transaction holds locked (SKIP LOCKED), and the next pass takes them up.
const rekeyPasses = 5

// Rekey re-seals stored bodies under the first data key, with the PIN hash
// of each event renewed under the same key and its PIN tokens under every
// configured key, in batches of small transactions, so it is safe while the
// service runs: it takes rows with FOR UPDATE SKIP LOCKED (never waiting on
// ingest, retention or a quarantine retry, and sharing the work with a
// concurrent rekey) and walks each table by id (keyset), so the work is
// proportional to the table.
// Ingest never updates a stored body, so nothing it does can be lost.
//
// A body that does not open (its key was removed from CODEWATCH_DATA_KEYS,
// or it does not authenticate) is counted and left alone; Rekey then
// returns an error naming the keys that are missing.
//
// Renewed tokens can make events match that did not (a body sealed from
// clear gets its first hash; a row hashed under a key that rows of the same
// PIN never had a token under gets one): after each batch, the codes whose
// lock evidence that can change are refolded, as a replay does, so evidence
// rekey makes visible shows at once.
func (s *Store) Rekey(ctx context.Context, opts RekeyOptions) (RekeyResult, error) {
	res := RekeyResult{Resealed: map[string]int64{}, Unreadable: map[string]int64{}}
	if s.cfg.Keys == nil {
		return res, errNoKeys
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 200
	}
	for _, table := range []string{tableEvents, tableQuarantine} {
		if err := s.rekeyTable(ctx, table, opts, &res); err != nil {
			return res, err
		}
	}
	if len(res.Unreadable) > 0 {
		return res, unreadableError(res.Unreadable)
	}
	return res, nil
}

func unreadableError(n map[string]int64) error {
	var parts []string
	for id, c := range n {
		if id == "" {
			parts = append(parts, fmt.Sprintf("%d that do not authenticate under their key", c))
		} else {
			parts = append(parts, fmt.Sprintf("%d under key %q, which is not in CODEWATCH_DATA_KEYS", c, id))
		}
	}
	sort.Strings(parts)
	return errors.New("rows left as they were: " + strings.Join(parts, "; "))
}

// rekeyFilter is the condition on the rows a rekey takes up; $1 is the
// first key's id. OnlyClear's matches the partial index *_clear_idx.
func rekeyFilter(onlyClear bool) string {
	if onlyClear {
		return `key_id IS NULL AND $1::text IS NOT NULL`
	}
	return `key_id IS DISTINCT FROM $1`
}

func (s *Store) rekeyTable(ctx context.Context, table string, opts RekeyOptions, res *RekeyResult) error {
	primary := s.cfg.Keys.PrimaryID()
	filter := rekeyFilter(opts.OnlyClear)
	p := RekeyProgress{Table: table}
	// Without OnlyClear this counts by a scan of the table: a rekey is an
	// operator's command, and the count makes its progress a percentage.
	var err error
	if p.Total, err = s.scanCount(ctx, table, filter, primary); err != nil {
		return err
	}
	if p.Total == 0 {
		return nil
	}
	if opts.Progress != nil {
		opts.Progress(p)
	}
	unreadable := map[int64]bool{}
	for pass := 0; pass < rekeyPasses; pass++ {
		var last int64
		missed := 0
		for {
			ids, err := s.rekeyNextIDs(ctx, table, filter, primary, last, opts.BatchSize)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				break
			}
			n, skipped, codes, err := s.rekeyBatch(ctx, table, filter, primary, ids, unreadable, res)
			if err != nil {
				return err
			}
			if err := s.rekeyRefold(ctx, codes, res); err != nil {
				return err
			}
			missed += skipped
			p.Done += int64(n)
			p.Unreadable = int64(len(unreadable))
			last = ids[len(ids)-1]
			if opts.Progress != nil {
				opts.Progress(p)
			}
		}
		// Rows another transaction held locked were skipped; another pass
		// takes them up (a skipped row may also have been deleted, or
		// re-sealed by a concurrent rekey: the pass then finds nothing).
		if missed == 0 {
			return nil
		}
	}
	return nil
}

// scanCount counts the rows of table that match filter. The pool's
// connections rule out sequential scans (pool.go) for the statements of
// ingest and the API; a count over a whole table is the one case where a
// sequential scan is the right plan, so this transaction allows it. It is
// not bounded by the query timeout: over a large table it takes as long as
// reading the table (ctx bounds it; OnlyClear's count reads an index).
func (s *Store) scanCount(ctx context.Context, table, filter, primary string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = on`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+filter, primary).Scan(&n)
	})
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}

// rekeyNextIDs returns the ids of the next rows to re-seal after last: at
// most batchSize, and no more than rekeyMaxBytes of bodies (at least one).
// octet_length of a TOASTed body reads its header, not the body.
func (s *Store) rekeyNextIDs(ctx context.Context, table, filter, primary string, last int64, batchSize int) ([]int64, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	rs, err := s.pool.Query(ctx, `SELECT id, octet_length(raw) FROM `+table+`
		WHERE id > $2 AND `+filter+` ORDER BY id LIMIT $3`, customPlan, primary, last, batchSize)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rs.Close()
	var ids []int64
	var total int64
	for rs.Next() {
		var id, n int64
		if err := rs.Scan(&id, &n); err != nil {
			return nil, unavailable(err)
		}
		if len(ids) > 0 && total+n > rekeyMaxBytes {
			break
		}
		ids, total = append(ids, id), total+n
	}
	if err := rs.Err(); err != nil {
		return nil, unavailable(err)
	}
	return ids, nil
}

// rekeyBatch re-seals the rows ids of table that still need it and are not
// locked by another transaction, in one transaction, and returns how many it
// re-sealed, how many of ids it did not see (locked, or gone, or done by
// another rekey), and the codes to refold (rekeyPartners). Unreadable rows
// are added to unreadable (once each) and counted in res.
func (s *Store) rekeyBatch(ctx context.Context, table, filter, primary string, ids []int64, unreadable map[int64]bool, res *RekeyResult) (resealed, skipped int, refold []string, err error) {
	var upID []int64
	var newlyUnreadableKeys []string
	seen := 0
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// The filter again: a row another rekey re-sealed meanwhile is not
		// taken up twice. SKIP LOCKED: a row being deleted by retention or
		// retried out of quarantine is left to the next pass. An event's PIN
		// tokens as they are, to tell what the new ones add.
		cols := `NULL::text, NULL::text, NULL::text, NULL::bytea[]`
		if table == tableEvents {
			cols = `event_type, access_code_id, device_id, ` + pinSetSQL(tableEvents)
		}
		rs, err := tx.Query(ctx, `SELECT id, message_id, key_id, raw, `+cols+` FROM `+table+`
		WHERE id = ANY($2) AND `+filter+` ORDER BY id FOR UPDATE SKIP LOCKED`, primary, ids)
		if err != nil {
			return unavailable(err)
		}
		var (
			upRaw, upHash    [][]byte
			upKey            []string
			upHint, upTokens []*string
			changed          []tokenChange
		)
		for rs.Next() {
			seen++
			var id int64
			var msg string
			var keyID, typ, code, dev *string
			var raw []byte
			var old [][]byte
			if err := rs.Scan(&id, &msg, &keyID, &raw, &typ, &code, &dev, &old); err != nil {
				rs.Close()
				return unavailable(err)
			}
			body, err := OpenBody(s.cfg.Keys, table, msg, keyID, raw)
			if err != nil {
				if !unreadable[id] {
					unreadable[id] = true
					k := "" // configured, but the body does not authenticate
					if keyID != nil && !s.knownKey(*keyID) {
						k = *keyID
					}
					newlyUnreadableKeys = append(newlyUnreadableKeys, k)
				}
				continue
			}
			k, ct, err := s.cfg.Keys.Seal(body, BodyAAD(table, msg))
			if err != nil {
				rs.Close()
				return err
			}
			upID, upRaw, upKey = append(upID, id), append(upRaw, ct), append(upKey, k)
			if table == tableEvents {
				p := lifecycle.Parsed{EventType: deref(typ), AccessCodeID: deref(code), DeviceID: deref(dev)}
				pc := pinOf(s.cfg.Keys, body, &p)
				upHash, upHint, upTokens = append(upHash, pc.hash), append(upHint, pc.hint), append(upTokens, byteaArray(pc.tokens))
				if added := newTokens(pc.tokens, old); len(added) > 0 {
					changed = append(changed, tokenChange{id: id, parsed: p, tokens: pc.tokens, added: added, old: nonNilSums(old)})
				}
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return unavailable(err)
		}
		if len(changed) > 0 {
			// Before the update: the batch's own rows still show the tokens
			// they had.
			if refold, err = rekeyPartners(ctx, tx, changed); err != nil {
				return unavailable(err)
			}
		}
		if len(upID) > 0 {
			if table == tableEvents {
				_, err = tx.Exec(ctx, `UPDATE events e SET raw = u.raw, key_id = u.key_id,
					pin_hash = u.pin_hash, pin_hint = u.pin_hint, pin_tokens = u.pin_tokens::bytea[]
				FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bytea[], $5::text[], $6::text[])
					AS u(id, raw, key_id, pin_hash, pin_hint, pin_tokens)
				WHERE e.id = u.id`, upID, upRaw, upKey, upHash, upHint, upTokens)
			} else {
				_, err = tx.Exec(ctx, `UPDATE quarantine q SET raw = u.raw, key_id = u.key_id
				FROM unnest($1::bigint[], $2::bytea[], $3::text[]) AS u(id, raw, key_id)
				WHERE q.id = u.id`, upID, upRaw, upKey)
			}
			if err != nil {
				return unavailable(err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, err
	}
	for _, k := range newlyUnreadableKeys {
		res.Unreadable[k]++
	}
	res.Resealed[table] += int64(len(upID))
	return len(upID), len(ids) - seen, refold, nil
}

// tokenChange is an event whose PIN tokens a rekey renews: tokens are its
// new ones, added those of them it gains, old the ones it had.
type tokenChange struct {
	id                 int64
	parsed             lifecycle.Parsed
	tokens, added, old [][]byte
}

// code is the code whose own event c is, or "" for a lock's report.
func (c *tokenChange) code() string {
	if lifecycle.IsPINReport(&c.parsed) {
		return ""
	}
	return c.parsed.AccessCodeID
}

// overlap reports whether two token sets share one.
func overlap(a, b [][]byte) bool {
	for _, x := range a {
		if slices.ContainsFunc(b, func(y []byte) bool { return bytes.Equal(x, y) }) {
			return true
		}
	}
	return false
}

// newTokens returns the tokens of next not among old.
func newTokens(next, old [][]byte) [][]byte {
	var out [][]byte
	for _, t := range next {
		if !slices.ContainsFunc(old, func(o []byte) bool { return bytes.Equal(o, t) }) {
			out = append(out, t)
		}
	}
	return out
}

// nonNilSums drops the NULL a row without a hash has in its token set.
func nonNilSums(sums [][]byte) [][]byte {
	out := [][]byte{}
	for _, s := range sums {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// rekeyPartnersSQL finds the events that an event's new tokens ($1) match
// and its old ones ($2) did not: the pairs rekey makes (on the event's
// lock: the tokens name it). One probe of events_pin_tokens_idx.
var rekeyPartnersSQL = `SELECT COALESCE(e.access_code_id, ''), e.event_type FROM events e
	WHERE ` + pinSetSQL("e") + ` && $1::bytea[] AND NOT (` + pinSetSQL("e") + ` && $2::bytea[])
		AND e.id <> $3
		AND ` + pinMatchedOf("e") + ` AND (` + pinReportOf("e") + ` OR (` + pinSourceOf("e") + `))`

// rekeyPartners returns the codes whose fold the new matches of changed can
// alter: of a code's event and a lock's report by PIN, the code (the report
// joins its history); of two codes' events, both (each may now share the
// other's PIN on the lock: lifecycle.Event.SamePIN). Two of one code's own
// events, or two reports, alter nothing.
func rekeyPartners(ctx context.Context, tx pgx.Tx, changed []tokenChange) ([]string, error) {
	codes := map[string]bool{}
	pair := func(mine, theirs string) {
		if theirs == mine {
			return // two reports, or one code's own events
		}
		for _, id := range []string{mine, theirs} {
			if id != "" {
				codes[id] = true
			}
		}
	}
	// Two rows of the batch: the lookup below sees each with the tokens
	// it had, and a row that had none (a body in clear: no hash) with
	// none, so pairs of such rows are found here.
	for i := range changed {
		for j := i + 1; j < len(changed); j++ {
			a, b := &changed[i], &changed[j]
			if overlap(a.tokens, b.tokens) && !overlap(a.old, b.old) {
				pair(a.code(), b.code())
			}
		}
	}
	b := &pgx.Batch{}
	for _, c := range changed {
		mine := c.code()
		b.Queue(rekeyPartnersSQL, c.added, c.old, c.id).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var code, typ string
				if err := rs.Scan(&code, &typ); err != nil {
					return err
				}
				theirs := ""
				if p := (lifecycle.Parsed{EventType: typ, AccessCodeID: code}); !lifecycle.IsPINReport(&p) {
					theirs = code
				}
				pair(mine, theirs)
			}
			return rs.Err()
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(codes))
	for id := range codes {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// rekeyRefold refolds codes after the batch that matched them committed,
// in transactions of their own (as Replay does; the rekey's row locks on
// events must not be held while waiting for a code's). Should it fail,
// the matches stay unseen until the code's next event: the error says to
// replay.
func (s *Store) rekeyRefold(ctx context.Context, codes []string, res *RekeyResult) error {
	for len(codes) > 0 {
		n := min(len(codes), 200)
		if _, err := s.replayBatch(ctx, codes[:n]); err != nil {
			return fmt.Errorf("refolding %d codes whose PIN matching changed: %w (run codewatch replay)", len(codes), err)
		}
		res.Refolded += int64(n)
		codes = codes[n:]
	}
	return nil
}

// knownKey reports whether id is configured.
func (s *Store) knownKey(id string) bool {
	for _, k := range s.cfg.Keys.IDs() {
		if k == id {
			return true
		}
	}
	return false
}

// KeyUsage counts the stored bodies per table and key id ("" for bodies
// still in clear). It reads both tables in full, unbounded by the query
// timeout (as scanCount): for `codewatch rekey` to say what it found and
// left, not for anything frequent.
func (s *Store) KeyUsage(ctx context.Context) (map[string]map[string]int64, error) {
	out := map[string]map[string]int64{tableEvents: {}, tableQuarantine: {}}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A whole-table count: see scanCount.
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = on`); err != nil {
			return err
		}
		rs, err := tx.Query(ctx, `SELECT 'events', COALESCE(key_id, ''), count(*) FROM events GROUP BY 2
			UNION ALL SELECT 'quarantine', COALESCE(key_id, ''), count(*) FROM quarantine GROUP BY 2`)
		if err != nil {
			return err
		}
		var table, keyID string
		var n int64
		_, err = pgx.ForEachRow(rs, []any{&table, &keyID, &n}, func() error {
			out[table][keyID] = n
			return nil
		})
		return err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}
