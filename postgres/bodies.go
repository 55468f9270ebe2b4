package postgres

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

// Raw bodies at rest (see migration 00007 and docs/operations.md, "Secrets
// at rest"): every body written to events or quarantine is sealed under the
// first key of Config.Keys, with its key id in key_id and the row's table and
// message_id as additional data. Everything that reads a body back opens it
// here; a body with key_id NULL was stored in clear by an older version.

// The tables that hold bodies; each name is part of its rows' AAD.
const (
	tableEvents     = "events"
	tableQuarantine = "quarantine"
)

// errNoKeys is returned by what must seal or open a body when the Store has
// no keys.
var errNoKeys = &lifecycle.Error{Code: lifecycle.EUnavailable,
	Message: "CODEWATCH_DATA_KEYS: no data keys configured; stored bodies can be neither written nor read"}

// BodyAAD is the additional data that binds a stored body to its row: the
// table and the row's message_id. It is part of every stored ciphertext:
// never change it.
func BodyAAD(table, messageID string) []byte {
	return datakeys.AAD(table, messageID)
}

// OpenBody returns the body stored in raw under keyID (NULL, here "", is a
// body stored in clear before encryption) in the row of table with
// messageID. Tests and tools that read rows directly use it too.
func OpenBody(keys *datakeys.Keyring, table, messageID string, keyID *string, raw []byte) ([]byte, error) {
	if keyID == nil {
		if raw == nil {
			raw = []byte{}
		}
		return raw, nil
	}
	body, err := keys.Open(*keyID, raw, BodyAAD(table, messageID))
	if err == nil && body == nil {
		body = []byte{} // an empty body, not a missing one
	}
	return body, err
}

// sealedBody is a request's body as it will be stored: sealed for one table
// and message id (the AAD), cached so that the ingest workers need not seal
// what the request's own goroutine already did.
type sealedBody struct {
	table, messageID string
	keyID            string
	ciphertext       []byte
}

// pinColumns are an event's PIN columns (see migrations 00007 and 00011).
type pinColumns struct {
	hash []byte
	hint *string
	// tokens: the PIN's on its lock under every key (pinTokens), for the
	// events whose PIN is matched (pinMatched).
	tokens [][]byte
}

// seal returns r's body sealed for table under r's message id, sealing it
// now unless it already is. Seal fails only without keys, which Ingest and
// RetryQuarantine refuse before a request gets here; a nil ciphertext then
// fails the insert (raw is NOT NULL) rather than storing anything in clear.
func (r *request) seal(keys *datakeys.Keyring, table string) (keyID string, ciphertext []byte) {
	if b := &r.sealed; b.ciphertext != nil && b.table == table && b.messageID == r.d.MessageID {
		return b.keyID, b.ciphertext
	}
	id, ct, err := keys.Seal(r.d.Body, BodyAAD(table, r.d.MessageID))
	if err != nil {
		return "", nil
	}
	r.sealed = sealedBody{table: table, messageID: r.d.MessageID, keyID: id, ciphertext: ct}
	return id, ct
}

// prepare does a request's share of the crypto on the caller's goroutine,
// before it queues for an ingest worker: seal the body for the table it is
// headed for and, for an event, hash its PIN and mask any PIN in the details
// that are stored in clear (events.details feeds troubleshooting_details,
// the ops API and alert payloads).
func (s *Store) prepare(r *request) {
	if r.reason != "" {
		r.seal(s.cfg.Keys, tableQuarantine)
		return
	}
	r.seal(s.cfg.Keys, tableEvents)
	r.pin = pinOf(s.cfg.Keys, r.d.Body, &r.parsed)
	if r.parsed.Details != nil {
		r.parsed.Details = datakeys.MaskPINs(r.parsed.Details)
	}
}

// pinOf returns the PIN columns of an event's body: its top-level code
// hashed under the first key, the hint, and, when the event's PIN is
// matched (p's type, code and lock say), its tokens. Most bodies have no
// code member at all; the scan for one is much cheaper than the JSON decode
// it saves.
func pinOf(keys *datakeys.Keyring, body []byte, p *lifecycle.Parsed) pinColumns {
	if !mayHaveCode(body) {
		return pinColumns{}
	}
	pin, ok := datakeys.ExtractPIN(body)
	if !ok {
		return pinColumns{}
	}
	_, sum := keys.PinHash(pin)
	hint := datakeys.PinHint(pin)
	pc := pinColumns{hash: sum, hint: &hint}
	if sum != nil && pinMatched(p) {
		pc.tokens = pinTokens(keys, p.DeviceID, pin)
	}
	return pc
}

// mayHaveCode reports whether body could have a member named code in any
// letter case (as ExtractPIN reads it): it has "code" between quotes, or an
// escape that could spell it.
func mayHaveCode(body []byte) bool {
	if bytes.Contains(body, []byte(`\u`)) {
		return true
	}
	for i := 0; i+6 <= len(body); i++ {
		if body[i] == '"' && body[i+5] == '"' &&
			body[i+1]|0x20 == 'c' && body[i+2]|0x20 == 'o' && body[i+3]|0x20 == 'd' && body[i+4]|0x20 == 'e' {
			return true
		}
	}
	return false
}

// openError says which key a body that does not open needs, in words fit
// for a log line or an API field (never any part of the body).
func openError(err error) string {
	var uk *datakeys.UnknownKeyError
	switch {
	case errors.As(err, &uk):
		return fmt.Sprintf("sealed under key %q, which is not in CODEWATCH_DATA_KEYS", uk.KeyID)
	case errors.Is(err, datakeys.ErrAuth):
		return "does not authenticate under its key (altered, or moved from another row)"
	}
	return err.Error()
}

// showBody fills what the ops API shows of a quarantined body: its size and
// the body opened with every PIN masked (datakeys.MaskPINs; a body that is
// not JSON shows as a notice, never as its bytes), or why it cannot be
// shown.
func (s *Store) showBody(q *lifecycle.QuarantinedDelivery, keyID *string, raw []byte) {
	body, err := OpenBody(s.cfg.Keys, tableQuarantine, q.MessageID, keyID, raw)
	if err != nil {
		q.SizeBytes = max(len(raw)-datakeys.Overhead, 0)
		why := "body " + openError(err)
		q.BodyUnavailable = &why
		return
	}
	q.SizeBytes = len(body)
	if masked := string(datakeys.MaskPINs(body)); utf8.ValidString(masked) {
		q.Body = &masked
	}
}
