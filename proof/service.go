package proof

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/codewatch/codewatch/lifecycle"
)

// Records reads a code's deletion record (postgres.Store).
type Records interface {
	DeletionRecord(ctx context.Context, id string) (*lifecycle.DeletionRecord, error)
}

// Service answers the ops API's proof routes (handlers.Proofs): a code's
// deletion record signed with the keyring's first key.
type Service struct {
	Records Records
	Keys    *Keyring
}

// SignedRecord is {"ok":true,"proof":...,"signature":...}, the proof
// written as the very bytes signed (no re-encoding on the way out).
func (s *Service) SignedRecord(ctx context.Context, id string) ([]byte, error) {
	rec, err := s.Records.DeletionRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	signed, err := s.Keys.Sign(rec)
	if err != nil {
		return nil, err
	}
	sig, err := json.Marshal(signed.Signature)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(signed.Proof) + len(sig) + 40)
	b.WriteString(`{"ok":true,"proof":`)
	b.Write(signed.Proof)
	b.WriteString(`,"signature":`)
	b.Write(sig)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// PublicKey is the signing key's id and public half (standard padded
// base64 of its 32 raw bytes).
func (s *Service) PublicKey() (string, string) {
	k := s.Keys.Signer()
	return k.ID, k.PublicBase64()
}
