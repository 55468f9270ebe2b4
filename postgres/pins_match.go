package postgres

import (
	"context"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

// A lock's reports that carry a PIN but name no managed code (an unlock
// without access_code_id, an unmanaged code appearing) are matched with the
// codes on the same lock that carried the same PIN, on keyed hashes
// (events_pin_idx). The codes' PINs come from their own access_code.*
// events; an unmanaged code's own events never count as a managed code's.

// pinSourceSQL selects the events whose PIN is a managed code's.
const pinSourceSQL = `event_type LIKE 'access_code.%' AND event_type NOT LIKE 'access_code.unmanaged.%'`

// pinReport reports whether an event is a lock's report matched by PIN.
func pinReport(p *lifecycle.Parsed) bool {
	return (p.EventType == lifecycle.TypeLockUnlocked && p.AccessCodeID == "") || p.EventType == lifecycle.TypeUnmanagedCreated
}

// pinMatchedCodes returns the codes on the reports' locks whose PIN the
// reports carry, hashed under every configured key (so that rows hashed
// before a rotation match until rekey renews them).
func (s *Store) pinMatchedCodes(ctx context.Context, tx pgx.Tx, reports []*request) ([]string, error) {
	var devs []string
	var sums [][]byte
	for _, r := range reports {
		pin, ok := datakeys.ExtractPIN(r.d.Body)
		if !ok || r.parsed.DeviceID == "" {
			continue
		}
		for _, h := range s.cfg.Keys.PinHashes(pin) {
			devs, sums = append(devs, r.parsed.DeviceID), append(sums, h.Sum)
		}
	}
	if len(devs) == 0 {
		return nil, nil
	}
	rs, err := tx.Query(ctx, `SELECT DISTINCT e.access_code_id
		FROM unnest($1::text[], $2::bytea[]) AS p(dev, h)
		JOIN events e ON e.device_id = p.dev AND e.pin_hash = p.h
		WHERE e.pin_hash IS NOT NULL AND e.device_id IS NOT NULL
			AND e.access_code_id IS NOT NULL AND `+pinSourceSQL, devs, sums)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rs, pgx.RowTo[string])
	sort.Strings(ids)
	return ids, err
}

// queueLoadPINReports reads, for each of ids, the lock's reports that carry
// its PIN on its lock, marked PINMatch (the fold then judges them).
func queueLoadPINReports(b *pgx.Batch, ids []string, evs map[string][]lifecycle.Event) {
	b.Queue(`SELECT p.access_code_id, l.event_id, l.event_type,
			COALESCE(l.occurred_at, l.created_at, l.received_at),
			COALESCE(l.workspace_id, ''), COALESCE(l.device_id, ''), COALESCE(l.connected_account_id, ''),
			l.details, l.source, COALESCE(l.access_code_id, '')
		FROM (SELECT DISTINCT access_code_id, device_id, pin_hash FROM events
			WHERE access_code_id = ANY($1) AND `+historySQL+` AND `+pinSourceSQL+`
				AND pin_hash IS NOT NULL AND device_id IS NOT NULL) p
		JOIN events l ON l.device_id = p.device_id AND l.pin_hash = p.pin_hash
		WHERE l.pin_hash IS NOT NULL AND l.device_id IS NOT NULL
			AND ((l.event_type = 'lock.unlocked' AND l.access_code_id IS NULL)
				OR l.event_type = 'access_code.unmanaged.created')`, ids).
		Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var code string
				var e lifecycle.Event
				var details []byte
				if err := rs.Scan(&code, &e.EventID, &e.Type, &e.OccurredAt, &e.WorkspaceID, &e.DeviceID,
					&e.ConnectedAccountID, &details, &e.Source, &e.AccessCodeID); err != nil {
					return err
				}
				e.Details, e.PINMatch = details, true
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
