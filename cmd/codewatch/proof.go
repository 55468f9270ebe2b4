package main

// Signed deletion records (issue 22): the ops API's signer, `codewatch proof
// verify` and `codewatch keys generate --signing`.

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/codewatch/codewatch/proof"
)

// signingKeys reads CODEWATCH_SIGNING_KEY: nil when unset.
func signingKeys(v string) (*proof.Keyring, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	kr, err := proof.ParseKeys(v)
	if err != nil {
		return nil, fmt.Errorf("CODEWATCH_SIGNING_KEY: %w", err)
	}
	return kr, nil
}

const proofUsage = `usage: codewatch proof verify FILE [--public-key K]

Checks a signed deletion record, as GET /v1/access_codes/{id}/proof answered
it (FILE, or - for stdin), offline: the Ed25519 signature over the RFC 8785
canonical JSON of its "proof". With --public-key (GET /v1/proof/public_key's
public_key: standard base64 of 32 bytes, optionally key_id:base64) it checks
against that key; without, against the keys of CODEWATCH_SIGNING_KEY, picked
by the record's key_id. Exits 0 when the record is intact, 1 when it was
changed or another key signed it, 2 on a usage error.`

// proofCmd handles `codewatch proof verify`.
func proofCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proof")
	pubFlag := fs.String("public-key", "", "the signer's public key (GET /v1/proof/public_key), standard base64 of 32 bytes")
	rest, err := parseFlags(fs, "proof", args, stdout, proofUsage)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0 || rest[0] != "verify":
		return usageError("proof", errors.New("proof needs the command verify"))
	case len(rest) != 2:
		return usageError("proof", errors.New("proof verify needs one FILE"))
	}
	var file []byte
	if rest[1] == "-" {
		file, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	} else {
		file, err = os.ReadFile(rest[1])
	}
	if err != nil {
		return &exitError{2, fmt.Errorf("proof verify: %w", err)}
	}
	var keyFor func(string) (ed25519.PublicKey, error)
	if *pubFlag != "" {
		wantID, pub, err := proof.ParsePublicKey(*pubFlag)
		if err != nil {
			return usageError("proof", fmt.Errorf("--public-key: %w", err))
		}
		keyFor = func(id string) (ed25519.PublicKey, error) {
			if wantID != "" && id != wantID {
				return nil, &proof.Problem{Reason: fmt.Sprintf("signed with key %q, not %q", id, wantID)}
			}
			return pub, nil
		}
	} else {
		kr, err := signingKeys(getenv("CODEWATCH_SIGNING_KEY"))
		if err != nil {
			return &exitError{2, err}
		}
		if kr == nil {
			return usageError("proof", errors.New("proof verify: give --public-key, or set CODEWATCH_SIGNING_KEY"))
		}
		keyFor = func(id string) (ed25519.PublicKey, error) {
			pub, ok := kr.PublicKey(id)
			if !ok {
				return nil, &proof.Problem{Reason: fmt.Sprintf("signed with key %q, which CODEWATCH_SIGNING_KEY does not hold", id)}
			}
			return pub, nil
		}
	}
	sig, err := proof.Verify(file, keyFor)
	var p *proof.Problem
	switch {
	case errors.As(err, &p):
		return &exitError{1, fmt.Errorf("proof verify: INVALID: %s", p.Reason)}
	case err != nil:
		return &exitError{1, fmt.Errorf("proof verify: %w", err)}
	}
	fmt.Fprintf(stdout, "proof verify: valid: signed with %s key %q\n", sig.Alg, sig.KeyID)
	return nil
}
