// Package proof signs and verifies codewatch's deletion records: Ed25519
// (crypto/ed25519) over the RFC 8785 canonical JSON (jcs.go) of the record,
// with the keys of CODEWATCH_SIGNING_KEY (id:base64 of a 32-byte seed, a
// comma-separated list for rotation, the first signs). A signed record is
// {"proof": {...}, "signature": {"alg": "Ed25519", "key_id": "...",
// "value": "<base64>"}}; anyone with the public key can check it offline,
// in any language that has Ed25519 and a JCS canonicaliser.
package proof

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Alg is the only signature algorithm: Ed25519 (RFC 8032), pure.
const Alg = "Ed25519"

// Key is one signing key: its id and its private key (from the seed).
type Key struct {
	ID      string
	private ed25519.PrivateKey
}

// Public is the key's public half.
func (k Key) Public() ed25519.PublicKey { return k.private.Public().(ed25519.PublicKey) }

// PublicBase64 is the public key as the API shows it: standard padded base64
// of its 32 raw bytes.
func (k Key) PublicBase64() string { return base64.StdEncoding.EncodeToString(k.Public()) }

// Keyring is CODEWATCH_SIGNING_KEY: the first key signs; every key verifies
// what it signed (rotation: put the new key first, keep the old ones after
// it for as long as records signed with them are checked here).
type Keyring struct{ keys []Key }

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ParseKeys reads "id:base64seed,id2:base64seed2". Its errors never quote
// key material.
func ParseKeys(list string) (*Keyring, error) {
	kr := &Keyring{}
	seen := map[string]bool{}
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok || !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("key %d must be id:base64seed, the id of letters, digits, _ and - (at most 64)", i+1)
		}
		if seen[id] {
			return nil, fmt.Errorf("key id %q appears twice", id)
		}
		seen[id] = true
		seed, err := decodeBase64(b64)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("key %q: the seed must be base64 of %d bytes (codewatch keys generate --signing makes one)", id, ed25519.SeedSize)
		}
		kr.keys = append(kr.keys, Key{ID: id, private: ed25519.NewKeyFromSeed(seed)})
	}
	if len(kr.keys) == 0 {
		return nil, errors.New("no key given")
	}
	return kr, nil
}

// decodeBase64 takes standard base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// Generate returns a new entry for CODEWATCH_SIGNING_KEY, id:base64seed,
// and the key's public half (standard base64).
func Generate(id string) (entry, public string, err error) {
	if !keyIDPattern.MatchString(id) {
		return "", "", fmt.Errorf("key id %q: letters, digits, _ and - only, at most 64", id)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", "", err
	}
	k := Key{ID: id, private: ed25519.NewKeyFromSeed(seed)}
	return id + ":" + base64.StdEncoding.EncodeToString(seed), k.PublicBase64(), nil
}

// Signer is the key that signs (the first).
func (kr *Keyring) Signer() Key { return kr.keys[0] }

// Keys lists every key, the signer first.
func (kr *Keyring) Keys() []Key { return append([]Key(nil), kr.keys...) }

// PublicKey returns the public key of key id.
func (kr *Keyring) PublicKey(id string) (ed25519.PublicKey, bool) {
	for _, k := range kr.keys {
		if k.ID == id {
			return k.Public(), true
		}
	}
	return nil, false
}

// String never shows key material.
func (kr *Keyring) String() string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.ID
	}
	return "signing keys " + strings.Join(ids, ", ")
}

// Signature is a signed record's "signature".
type Signature struct {
	Alg   string `json:"alg"`
	KeyID string `json:"key_id"`
	// Value is the Ed25519 signature, standard padded base64.
	Value string `json:"value"`
}

// Signed is what GET /v1/access_codes/{id}/proof answers (with "ok").
type Signed struct {
	// Proof is the record in canonical form: the signed bytes themselves.
	Proof     json.RawMessage `json:"proof"`
	Signature Signature       `json:"signature"`
}

// Sign marshals doc, turns every number that is not an integer a double
// holds exactly into a string (so the record holds no non-integer numbers,
// whatever Seam's texts it quotes), canonicalises it and signs it with the
// keyring's first key.
func (kr *Keyring) Sign(doc any) (*Signed, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	raw, err = IntegersOnly(raw)
	if err != nil {
		return nil, err
	}
	canon, err := Canonicalize(raw)
	if err != nil {
		return nil, err
	}
	k := kr.Signer()
	sig := ed25519.Sign(k.private, canon)
	return &Signed{Proof: canon, Signature: Signature{Alg: Alg, KeyID: k.ID, Value: base64.StdEncoding.EncodeToString(sig)}}, nil
}

// maxSafeInteger is the largest integer every double holds exactly (2^53-1).
const maxSafeInteger = 1<<53 - 1

// IntegersOnly rewrites a JSON text so that each number that is not an
// integer of at most 2^53-1 in magnitude becomes a string of its literal:
// such numbers read differently in different languages.
func IntegersOnly(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	changed := false
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				t[k] = walk(x)
			}
		case []any:
			for i, x := range t {
				t[i] = walk(x)
			}
		case json.Number:
			if !SafeInteger(string(t)) {
				changed = true
				return string(t)
			}
		}
		return v
	}
	v = walk(v)
	if !changed {
		return raw, nil
	}
	return json.Marshal(v)
}

// SafeInteger reports whether a JSON number literal is an integer of at most
// 2^53-1 in magnitude, written without fraction or exponent.
func SafeInteger(lit string) bool {
	if strings.ContainsAny(lit, ".eE") {
		return false
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	return err == nil && n >= -maxSafeInteger && n <= maxSafeInteger
}

// Problem is why a signed record does not verify.
type Problem struct{ Reason string }

func (p *Problem) Error() string { return p.Reason }

// Verify checks a signed record as the route answered it (any JSON object
// with "proof" and "signature"; other members are ignored) against the
// public key keyFor gives for its key_id. It re-canonicalises "proof" as
// it is in the file, so a record reformatted in between still verifies
// and any changed value does not. A *Problem says why it is invalid; any
// other error, that the file is not a signed record.
func Verify(file []byte, keyFor func(keyID string) (ed25519.PublicKey, error)) (*Signature, error) {
	var doc struct {
		Proof     json.RawMessage `json:"proof"`
		Signature *Signature      `json:"signature"`
	}
	if err := json.Unmarshal(file, &doc); err != nil {
		return nil, fmt.Errorf("not a signed record (JSON with proof and signature): %w", err)
	}
	if len(doc.Proof) == 0 || doc.Signature == nil {
		return nil, errors.New("not a signed record: proof or signature is missing")
	}
	sig := doc.Signature
	if sig.Alg != Alg {
		return sig, &Problem{fmt.Sprintf("signature alg %q is not %s", sig.Alg, Alg)}
	}
	value, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil || len(value) != ed25519.SignatureSize {
		return sig, &Problem{"signature value is not standard base64 of a 64-byte Ed25519 signature"}
	}
	pub, err := keyFor(sig.KeyID)
	if err != nil {
		return sig, err
	}
	canon, err := Canonicalize(doc.Proof)
	if err != nil {
		return sig, &Problem{"proof cannot be canonicalised: " + err.Error()}
	}
	if !ed25519.Verify(pub, canon, value) {
		return sig, &Problem{"signature does not match the proof: the record was changed after it was signed, or another key signed it"}
	}
	return sig, nil
}

// ParsePublicKey reads a public key as GET /v1/proof/public_key shows it
// (standard base64 of 32 bytes), optionally prefixed "key_id:".
func ParsePublicKey(s string) (keyID string, pub ed25519.PublicKey, err error) {
	s = strings.TrimSpace(s)
	if id, rest, ok := strings.Cut(s, ":"); ok {
		keyID, s = id, rest
	}
	b, err := decodeBase64(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return "", nil, fmt.Errorf("a public key is base64 of %d bytes (GET /v1/proof/public_key)", ed25519.PublicKeySize)
	}
	return keyID, ed25519.PublicKey(b), nil
}
