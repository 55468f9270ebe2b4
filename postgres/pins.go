package postgres

import (
	"context"

	"github.com/codewatch/codewatch/lifecycle"
)

// PINs are never stored: an event that carries one (Seam's top-level
// "code") stores its keyed hash and hint (migration 00007, bodies.go).

// currentPinHint is the hint of the newest of a code's events (oldest
// first) that carried a PIN.
func currentPinHint(events []lifecycle.EventRef) *string {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].PinHint != nil {
			return events[i].PinHint
		}
	}
	return nil
}

// CodesWithPIN returns, in id order, the access codes on deviceID whose
// access_code.* events carried pin: what a lock's report of a code typed at
// it is matched against. The PIN is hashed under every configured key
// (datakeys.PinHashes) and each event's hash compared under its own key_id,
// so codes stored before a rotation match until `codewatch rekey` has moved
// them to the new key, and after. Bodies still in clear (from before
// encryption, key_id NULL) have no hash yet and do not match until serve's
// start-up pass or a rekey has sealed them.
func (s *Store) CodesWithPIN(ctx context.Context, deviceID, pin string) ([]string, error) {
	if s.cfg.Keys == nil {
		return nil, errNoKeys
	}
	sums := s.cfg.Keys.PinHashes(pin)
	if len(sums) == 0 {
		return []string{}, nil
	}
	keyIDs, hashes := make([]string, len(sums)), make([][]byte, len(sums))
	for i, p := range sums {
		keyIDs[i], hashes[i] = p.KeyID, p.Sum
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	// From the device's codes (access_codes_device_idx) to their events
	// (events_access_code_idx, whose predicate this repeats): no index on
	// pin_hash is needed, and none costs ingest.
	ids, err := queryIDs(ctx, s.pool, `SELECT DISTINCT c.access_code_id
		FROM access_codes c
		JOIN events e ON e.access_code_id = c.access_code_id
			AND e.access_code_id IS NOT NULL AND e.event_type LIKE 'access_code.%'
		WHERE c.device_id = $1
			AND (e.key_id, e.pin_hash) IN (SELECT k, h FROM unnest($2::text[], $3::bytea[]) AS u(k, h))
		ORDER BY 1`, deviceID, keyIDs, hashes)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return ids, nil
}
