package proof_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/codewatch/codewatch/proof"
)

func TestSignVerifyAndTamper(t *testing.T) {
	entry, pub, err := proof.Generate("s1")
	if err != nil {
		t.Fatal(err)
	}
	old, _, _ := proof.Generate("s0")
	kr, err := proof.ParseKeys(entry + ", " + old)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Signer().ID != "s1" || kr.Signer().PublicBase64() != pub {
		t.Fatalf("signer %s %s, want s1 %s", kr.Signer().ID, kr.Signer().PublicBase64(), pub)
	}
	doc := map[string]any{"access_code_id": "c1", "n": 3, "events": []any{map[string]any{"event_id": "e1"}}, "ratio": 0.5}
	signed, err := kr.Sign(doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"access_code_id":"c1","events":[{"event_id":"e1"}],"n":3,"ratio":"0.5"}`; string(signed.Proof) != want {
		t.Fatalf("proof %s, want %s", signed.Proof, want)
	}
	file, _ := json.MarshalIndent(map[string]any{"proof": signed.Proof, "signature": signed.Signature, "ok": true}, "", "  ")
	keyFor := func(id string) (ed25519.PublicKey, error) {
		k, ok := kr.PublicKey(id)
		if !ok {
			return nil, errors.New("unknown key " + id)
		}
		return k, nil
	}
	if _, err := proof.Verify(file, keyFor); err != nil {
		t.Fatalf("a fresh, re-indented record does not verify: %v", err)
	}
	for _, tamper := range []struct{ from, to string }{
		{`"c1"`, `"c2"`}, {`"e1"`, `"e2"`}, {`3`, `4`}, {`"0.5"`, `"0.6"`},
		{`"alg": "Ed25519"`, `"alg": "HS256"`}, {`"key_id": "s1"`, `"key_id": "s0"`},
	} {
		bad := strings.Replace(string(file), tamper.from, tamper.to, 1)
		if bad == string(file) {
			t.Fatalf("%s not in the file:\n%s", tamper.from, file)
		}
		_, err := proof.Verify([]byte(bad), keyFor)
		var p *proof.Problem
		if !errors.As(err, &p) {
			t.Errorf("%s -> %s: verified (err %v); want a Problem", tamper.from, tamper.to, err)
		}
	}
	// The public key as the API shows it verifies by itself.
	id, pk, err := proof.ParsePublicKey(pub)
	if err != nil || id != "" || base64.StdEncoding.EncodeToString(pk) != pub {
		t.Fatalf("ParsePublicKey: %q %v", id, err)
	}
	if _, err := proof.Verify(file, func(string) (ed25519.PublicKey, error) { return pk, nil }); err != nil {
		t.Fatal(err)
	}
}

func TestParseKeysRefuses(t *testing.T) {
	seed := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, bad := range []string{"", "nokey", "a b:" + seed, "k:" + base64.StdEncoding.EncodeToString(make([]byte, 31)),
		"k:" + seed + ",k:" + seed, "k:not base64!"} {
		if _, err := proof.ParseKeys(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), seed) {
			t.Errorf("%q: the error quotes the key: %v", bad, err)
		}
	}
}
