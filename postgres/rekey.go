package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
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
}

// rekeyMaxBytes bounds the bodies held in memory for one batch (bodies are
// up to 1 MiB; Seam's are a few KiB).
const rekeyMaxBytes = 8 << 20

// rekeyPasses bounds the passes over a table: a pass skips rows another
// transaction holds locked (SKIP LOCKED), and the next pass takes them up.
const rekeyPasses = 5

// Rekey re-seals stored bodies under the first data key, with the PIN hash
// of each event renewed under the same key, in batches of small
// transactions, so it is safe while the service runs: it takes rows with
// FOR UPDATE SKIP LOCKED (never waiting on ingest, retention or a
// quarantine retry, and sharing the work with a concurrent rekey) and walks
// each table by id (keyset), so the work is proportional to the table.
// Ingest never updates a stored body, so nothing it does can be lost.
//
// A body that does not open (its key was removed from CODEWATCH_DATA_KEYS,
// or it does not authenticate) is counted and left alone; Rekey then
// returns an error naming the keys that are missing.
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
			n, skipped, err := s.rekeyBatch(ctx, table, filter, primary, ids, unreadable, res)
			if err != nil {
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
// re-sealed and how many of ids it did not see (locked, or gone, or done by
// another rekey). Unreadable rows are added to unreadable (once each) and
// counted in res.
func (s *Store) rekeyBatch(ctx context.Context, table, filter, primary string, ids []int64, unreadable map[int64]bool, res *RekeyResult) (resealed, skipped int, err error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, unavailable(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after Commit
	// The filter again: a row another rekey re-sealed meanwhile is not
	// taken up twice. SKIP LOCKED: a row being deleted by retention or
	// retried out of quarantine is left to the next pass.
	rs, err := tx.Query(ctx, `SELECT id, message_id, key_id, raw FROM `+table+`
		WHERE id = ANY($2) AND `+filter+` ORDER BY id FOR UPDATE SKIP LOCKED`, primary, ids)
	if err != nil {
		return 0, 0, unavailable(err)
	}
	var (
		upID                []int64
		upRaw, upHash       [][]byte
		upKey               []string
		upHint              []*string
		newlyUnreadableKeys []string
	)
	seen := 0
	for rs.Next() {
		seen++
		var id int64
		var msg string
		var keyID *string
		var raw []byte
		if err := rs.Scan(&id, &msg, &keyID, &raw); err != nil {
			rs.Close()
			return 0, 0, unavailable(err)
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
			return 0, 0, err
		}
		upID, upRaw, upKey = append(upID, id), append(upRaw, ct), append(upKey, k)
		if table == tableEvents {
			pc := pinOf(s.cfg.Keys, body)
			upHash, upHint = append(upHash, pc.hash), append(upHint, pc.hint)
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, 0, unavailable(err)
	}
	if len(upID) > 0 {
		if table == tableEvents {
			_, err = tx.Exec(ctx, `UPDATE events e SET raw = u.raw, key_id = u.key_id,
					pin_hash = u.pin_hash, pin_hint = u.pin_hint
				FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bytea[], $5::text[])
					AS u(id, raw, key_id, pin_hash, pin_hint)
				WHERE e.id = u.id`, upID, upRaw, upKey, upHash, upHint)
		} else {
			_, err = tx.Exec(ctx, `UPDATE quarantine q SET raw = u.raw, key_id = u.key_id
				FROM unnest($1::bigint[], $2::bytea[], $3::text[]) AS u(id, raw, key_id)
				WHERE q.id = u.id`, upID, upRaw, upKey)
		}
		if err != nil {
			return 0, 0, unavailable(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, unavailable(err)
	}
	for _, k := range newlyUnreadableKeys {
		res.Unreadable[k]++
	}
	res.Resealed[table] += int64(len(upID))
	return len(upID), len(ids) - seen, nil
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
