// Package datakeys encrypts the webhook bodies codewatch stores and keeps the
// door PINs inside them out of the database in usable form.
//
// Threat model: someone who obtains a copy of the database — a dump, a
// backup, a replica, a misdirected support export — must not get a working
// door code from it. Seam's access-code and lock events carry the PIN in a
// "code" field, so codewatch
//
//   - stores raw bodies sealed with AES-256-GCM under a key that lives only in
//     the environment (CODEWATCH_DATA_KEYS), never in the database;
//   - binds each ciphertext to its row with additional data (AAD), so a
//     ciphertext copied into another row does not open;
//   - keeps, for matching an unlock-by-code against a deleted code's PIN, an
//     HMAC of the PIN under a key derived from the data key: equal PINs
//     match, but a 4–8 digit PIN cannot be brute-forced from the hash
//     without the key;
//   - shows people a hint (••34) and bodies with every PIN masked.
//
// It does not protect against someone who has both the database and the
// keys (a compromised running server): with the key a PIN hash falls to a
// 10^8 search in seconds. Nor does a PIN hash hide that two rows share a PIN.
// A hint gives away two characters (100 candidates left for a 4-digit PIN):
// it is for people to recognise a code by, and stored hints weaken what a
// database copy reveals accordingly.
//
// The ciphertext layout, the AAD encoding and the PIN-hash derivation label
// are stored formats: TestKnownAnswers pins them to independently computed
// vectors, because changing any of them strands every existing row.
//
// The package is pure: no database, no HTTP, no global state.
package datakeys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the size of a data key: AES-256.
const KeySize = 32

// Overhead is how much longer a ciphertext is than its plaintext: the
// 12-byte nonce in front and the 16-byte GCM tag at the end.
const Overhead = nonceSize + tagSize

const (
	nonceSize = 12
	tagSize   = 16
	maxIDLen  = 32
)

// pinHashInfo labels the HKDF derivation of the PIN-hash key. It is part of
// every stored PIN hash: changing it makes every stored hash unmatchable, so
// a new scheme gets a new label (v2), never an edit of this one.
const pinHashInfo = "codewatch pin hash v1"

// ErrAuth is returned by Open when the ciphertext does not authenticate:
// it was altered, truncated, moved from another row (different AAD), or
// sealed under a different key that happens to share the id.
var ErrAuth = errors.New("datakeys: ciphertext failed authentication (altered, moved from another row, or sealed under another key)")

// ErrNoAAD is returned by Seal and Open when aad is empty. Every ciphertext
// must be bound to its row; an empty AAD would let a ciphertext be copied
// into any other row and still open.
var ErrNoAAD = errors.New("datakeys: empty additional data: pass the row's identity (see AAD)")

// UnknownKeyError is returned by Open for a key id that is not configured,
// typically a key removed from CODEWATCH_DATA_KEYS while rows sealed under it
// remain. Callers use errors.As to report which key is missing.
type UnknownKeyError struct {
	KeyID string
}

func (e *UnknownKeyError) Error() string {
	if e.KeyID == "" {
		return "datakeys: record has no key id (a plaintext row, not a ciphertext)"
	}
	return fmt.Sprintf("datakeys: key %q is no longer configured in CODEWATCH_DATA_KEYS", e.KeyID)
}

type dataKey struct {
	id     string
	aead   cipher.AEAD // nonce || sealed; safe for concurrent use
	pinKey []byte      // HKDF-SHA256(data key, info pinHashInfo)
}

// Keyring is a parsed CODEWATCH_DATA_KEYS: the first key seals, every key
// opens and matches PINs. It is immutable and safe for concurrent use.
//
// Its String, GoString, Format and LogValue print key ids only. They have
// value receivers so that printing a Keyring value (not just a pointer)
// cannot fall through to fmt's reflection, which would print the AES key
// schedule and the PIN-hash keys.
type Keyring struct {
	keys []*dataKey
	byID map[string]*dataKey
}

// Parse reads CODEWATCH_DATA_KEYS: one or more id:base64key entries,
// comma-separated, the first of which seals. Keys are 32 bytes in standard or
// URL-safe base64, padded or not; ids are 1–32 of [A-Za-z0-9_-] and unique.
//
// Errors name the entry by position (and id, once the id is known valid) and
// never contain any part of the key text: error messages end up in logs.
func Parse(s string) (*Keyring, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("datakeys: no keys (want id:base64key, comma-separated)")
	}
	kr := &Keyring{byID: map[string]*dataKey{}}
	for i, entry := range strings.Split(s, ",") {
		n := i + 1
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("datakeys: key %d: empty entry (stray comma?)", n)
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			// No id: the whole entry is probably a bare key, so it is not
			// quoted.
			return nil, fmt.Errorf("datakeys: key %d: want id:base64key, found no ':'", n)
		}
		id = strings.TrimSpace(id)
		if !validID(id) {
			// An invalid id may be key text pasted in the wrong place: not
			// quoted either.
			return nil, fmt.Errorf("datakeys: key %d: id must be 1-%d characters of A-Za-z0-9_-", n, maxIDLen)
		}
		if _, dup := kr.byID[id]; dup {
			return nil, fmt.Errorf("datakeys: key %d (id %s): duplicate id", n, id)
		}
		raw, err := decodeKey(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("datakeys: key %d (id %s): not %d bytes of base64", n, id, KeySize)
		}
		if len(raw) != KeySize {
			// The length is not secret; it tells a 16-byte (AES-128) or hex
			// key apart from a typo.
			return nil, fmt.Errorf("datakeys: key %d (id %s): not %d bytes of base64 (decodes to %d bytes)", n, id, KeySize, len(raw))
		}
		k, err := newDataKey(id, raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("datakeys: key %d (id %s): %v", n, id, err)
		}
		kr.keys = append(kr.keys, k)
		kr.byID[id] = k
	}
	return kr, nil
}

// decodeKey accepts the four base64 spellings people paste: standard or
// URL-safe alphabet, with or without '=' padding (openssl rand -base64 32
// gives the padded standard form, many tools the unpadded URL-safe one).
func decodeKey(s string) ([]byte, error) {
	encs := []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding}
	if strings.HasSuffix(s, "=") {
		encs = []*base64.Encoding{base64.StdEncoding, base64.URLEncoding}
	}
	var err error
	for _, enc := range encs {
		var b []byte
		if b, err = enc.Strict().DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newDataKey(id string, raw []byte) (*dataKey, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	// NewGCMWithRandomNonce draws a fresh 96-bit nonce from crypto/rand for
	// every Seal and lays the ciphertext out as nonce || sealed || tag.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	pinKey, err := hkdf.Key(sha256.New, raw, nil, pinHashInfo, sha256.Size)
	if err != nil {
		return nil, err
	}
	return &dataKey{id: id, aead: aead, pinKey: pinKey}, nil
}

// Generate returns a new entry "id:base64key" with 32 random bytes in padded
// standard base64, ready for CODEWATCH_DATA_KEYS (for dev mode's data
// directory and for `codewatch keys generate`). To rotate, put the new entry
// first and keep the old ones after it until no row uses them.
func Generate(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("datakeys: id %q: must be 1-%d characters of A-Za-z0-9_-", id, maxIDLen)
	}
	key := make([]byte, KeySize)
	rand.Read(key) // never returns an error; crashes the program instead
	s := id + ":" + base64.StdEncoding.EncodeToString(key)
	clear(key)
	return s, nil
}

// PrimaryID is the id of the key that seals and hashes new PINs.
func (kr *Keyring) PrimaryID() string {
	if kr == nil || len(kr.keys) == 0 {
		return ""
	}
	return kr.keys[0].id
}

// IDs lists the configured key ids, the sealing one first.
func (kr *Keyring) IDs() []string {
	if kr == nil {
		return nil
	}
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return ids
}

// AAD builds additional data from parts such as a table name and a message
// id. Each part is length-prefixed, so ("ab", "c") and ("a", "bc") differ:
// plain concatenation would let a ciphertext open in a row whose parts merely
// concatenate the same. The encoding is part of every stored ciphertext:
// never change it.
func AAD(parts ...string) []byte {
	n := len("codewatch\x00")
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, "codewatch\x00"...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// Seal encrypts plaintext under the first key with AES-256-GCM and a random
// 96-bit nonce, authenticating aad with it. The ciphertext is
//
//	nonce (12 bytes) || AES-GCM ciphertext (len(plaintext) bytes) || tag (16 bytes)
//
// Store keyID next to it; pass the same aad (the row's identity, see AAD) to
// Open. aad must not be empty.
//
// A key must not seal more than 2^32 records: past that, the chance that two
// random nonces collide (which would expose the XOR of two bodies and let
// GCM tags be forged) stops being negligible. 2^32 is 16 months at a
// sustained 100 events/s but 10 days at 5,000/s: rotate by volume.
func (kr *Keyring) Seal(plaintext, aad []byte) (keyID string, ciphertext []byte, err error) {
	if kr == nil || len(kr.keys) == 0 {
		return "", nil, errors.New("datakeys: no keys configured")
	}
	if len(aad) == 0 {
		return "", nil, ErrNoAAD
	}
	k := kr.keys[0]
	return k.id, k.aead.Seal(make([]byte, 0, len(plaintext)+Overhead), nil, plaintext, aad), nil
}

// Open decrypts a ciphertext from Seal with the key named keyID. It returns
// *UnknownKeyError when keyID is not configured (or empty: a plaintext row)
// and ErrAuth when the ciphertext or aad does not authenticate.
func (kr *Keyring) Open(keyID string, ciphertext, aad []byte) ([]byte, error) {
	if kr == nil {
		return nil, &UnknownKeyError{KeyID: keyID}
	}
	k, ok := kr.byID[keyID]
	if !ok {
		return nil, &UnknownKeyError{KeyID: keyID}
	}
	if len(aad) == 0 {
		return nil, ErrNoAAD
	}
	if len(ciphertext) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than nonce and tag", ErrAuth, len(ciphertext))
	}
	pt, err := k.aead.Open(nil, nil, ciphertext, aad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// NeedsRekey reports whether a row stored under keyID should be re-sealed
// (and its PIN re-hashed) under the first key: keyID is empty (a plaintext
// row from before encryption), an older key, or one no longer configured.
func (kr *Keyring) NeedsRekey(keyID string) bool {
	return keyID == "" || kr == nil || len(kr.keys) == 0 || keyID != kr.keys[0].id
}

// normalizePIN is applied before every hash and hint so that " 1234" from
// one source and "1234" from another match. PINs are digit strings in
// practice, but nothing else is assumed.
func normalizePIN(pin string) string { return strings.TrimSpace(pin) }

// PinSum is a keyed PIN hash and the id of the data key it derives from.
type PinSum struct {
	KeyID string
	Sum   []byte
}

func (k *dataKey) pinSum(pin string) []byte {
	m := hmac.New(sha256.New, k.pinKey)
	m.Write([]byte(pin))
	return m.Sum(nil)
}

// PinHash is HMAC-SHA256 of the normalized PIN under the first key's PIN
// key, the form to store. An empty (or blank) PIN has no hash: sum is nil,
// and a nil sum matches nothing in MatchPIN.
func (kr *Keyring) PinHash(pin string) (keyID string, sum []byte) {
	if kr == nil || len(kr.keys) == 0 {
		return "", nil
	}
	k := kr.keys[0]
	pin = normalizePIN(pin)
	if pin == "" {
		return k.id, nil
	}
	return k.id, k.pinSum(pin)
}

// PinHashes hashes the normalized PIN under every configured key, the first
// key first, to look up rows hashed under older keys as well (e.g.
// WHERE (pin_key_id, pin_hash) IN (...)). A blank PIN gives none.
func (kr *Keyring) PinHashes(pin string) []PinSum {
	pin = normalizePIN(pin)
	if kr == nil || pin == "" {
		return nil
	}
	out := make([]PinSum, len(kr.keys))
	for i, k := range kr.keys {
		out[i] = PinSum{KeyID: k.id, Sum: k.pinSum(pin)}
	}
	return out
}

// MatchPIN reports whether pin hashes to sum under key keyID, comparing in
// constant time. An unknown key, a blank PIN or an empty sum never match.
func (kr *Keyring) MatchPIN(pin, keyID string, sum []byte) bool {
	if kr == nil {
		return false
	}
	k, ok := kr.byID[keyID]
	pin = normalizePIN(pin)
	if !ok || pin == "" || len(sum) != sha256.Size {
		return false
	}
	return hmac.Equal(k.pinSum(pin), sum)
}

// PinHint is what people may see of a PIN: "••" and its last two
// characters ("••34"), or just "••" for a PIN of fewer than three
// characters, which two characters would all but give away. The number of
// dots is fixed so the hint does not give the PIN's length either.
func PinHint(pin string) string {
	r := []rune(normalizePIN(pin))
	if len(r) < 3 {
		return "••"
	}
	return "••" + string(r[len(r)-2:])
}

// String prints the key ids, the sealing one first, never key material.
func (kr Keyring) String() string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return "datakeys.Keyring[" + strings.Join(ids, ",") + "]"
}

// GoString keeps %#v from printing key material.
func (kr Keyring) GoString() string { return kr.String() }

// Format makes every verb (%d, %x, %+v, ...) print String, so no verb falls
// through to reflection over the key fields.
func (kr Keyring) Format(f fmt.State, verb rune) { fmt.Fprint(f, kr.String()) }

// LogValue logs the key ids only.
func (kr Keyring) LogValue() slog.Value {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	primary := ""
	if len(ids) > 0 {
		primary = ids[0]
	}
	return slog.GroupValue(slog.String("primary", primary), slog.Any("ids", ids))
}
