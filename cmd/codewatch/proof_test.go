package main

// Signed deletion records (issue 22), checked by hand: the signature is
// verified here with crypto/ed25519 alone, over a canonical form this test
// makes its own way (encoding/json's sorted maps), not with package proof's
// canonicaliser or verifier; then `codewatch proof verify` is run on the
// saved answer, intact and tampered.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/proof"
)

// canonByHand re-encodes a JSON value with encoding/json: map keys sorted,
// numbers as their literals, no HTML escaping. For the records' content
// (ASCII member names, integers, strings without U+2028/U+2029) that is
// RFC 8785's form.
func canonByHand(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return encodeByHand(v)
}

func encodeByHand(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// verifyByHand checks a saved answer against the public key as
// GET /v1/proof/public_key shows it.
func verifyByHand(file []byte, publicKey string) error {
	var doc struct {
		Proof     json.RawMessage `json:"proof"`
		Signature struct {
			Alg   string `json:"alg"`
			KeyID string `json:"key_id"`
			Value string `json:"value"`
		} `json:"signature"`
	}
	if err := json.Unmarshal(file, &doc); err != nil {
		return err
	}
	if doc.Signature.Alg != "Ed25519" {
		return fmt.Errorf("alg %q", doc.Signature.Alg)
	}
	pub, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key %q is not standard base64 of 32 bytes", publicKey)
	}
	sig, err := base64.StdEncoding.DecodeString(doc.Signature.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("signature %q is not standard base64 of 64 bytes", doc.Signature.Value)
	}
	canon, err := canonByHand(doc.Proof)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, canon, sig) {
		return errors.New("signature does not verify")
	}
	return nil
}

// leaves lists the paths of every value in a decoded JSON document.
func leaves(v any, path string, out *[]string) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			leaves(t[k], path+"/"+k, out)
		}
	case []any:
		for i, x := range t {
			leaves(x, fmt.Sprintf("%s/%d", path, i), out)
		}
	default:
		*out = append(*out, path)
	}
}

// tampered is the answer with the value at path changed.
func tampered(t *testing.T, file []byte, path string) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var cur any = doc["proof"]
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = changed(c[p])
			}
			cur = c[p]
		case []any:
			var n int
			fmt.Sscan(p, &n)
			if last {
				c[n] = changed(c[n])
			}
			cur = c[n]
		}
	}
	b, err := encodeByHand(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func changed(v any) any {
	switch t := v.(type) {
	case string:
		return t + "x"
	case json.Number:
		return json.Number(string(t) + "1")
	case bool:
		return !t
	case nil:
		return "x"
	}
	return v
}

// pinDeletionRecord: the signed records of a code deleted through Seam's
// API (its request, lookups and the lock's evidence with the PIN) and of a
// code whose removal failed, checked by hand, tamper by tamper, and by
// `codewatch proof verify`.
func pinDeletionRecord(t *testing.T, p *pinProof) {
	var pk struct {
		KeyID     string `json:"key_id"`
		PublicKey string `json:"public_key"`
	}
	if st := p.s.api(http.MethodGet, "/v1/proof/public_key", p.s.Token, nil, &pk); st != http.StatusOK || pk.PublicKey == "" {
		t.Fatalf("public key: %d %+v", st, pk)
	}
	for _, name := range []string{"seam", "failed"} {
		code := p.codes[name]
		if code == "" {
			t.Fatalf("no %s code (an earlier path failed)", name)
		}
		req, _ := http.NewRequest(http.MethodGet, p.s.Ops+"/v1/access_codes/"+code+"/proof", nil)
		req.Header.Set("Authorization", "Bearer "+p.s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		file, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("proof of %s: %d %s", code, resp.StatusCode, file)
		}
		p.record("deletion record", "GET /v1/access_codes/{"+name+"}/proof", file)
		// The proof is sent as the very bytes signed.
		var raw struct {
			Proof json.RawMessage `json:"proof"`
		}
		_ = json.Unmarshal(file, &raw)
		if canon, err := canonByHand(raw.Proof); err != nil || !bytes.Equal(canon, raw.Proof) {
			t.Errorf("%s: the proof is not sent in canonical form (%v)", name, err)
		}
		for _, want := range []string{`"access_code_id":"` + code + `"`, `"deletion_state"`, `"events":[{`, `"generated_at"`, `"pin_hint":"••64"`} {
			if !bytes.Contains(raw.Proof, []byte(want)) {
				t.Errorf("%s: the proof lacks %s: %s", name, want, raw.Proof)
			}
		}
		if name == "seam" {
			for _, want := range []string{`"deletion_request":{`, `"lookups":[{`, `"seam_request_id":"`, `"lock_evidence":[{`} {
				if !bytes.Contains(raw.Proof, []byte(want)) {
					t.Errorf("seam: the proof lacks %s: %s", want, raw.Proof)
				}
			}
		}
		if err := verifyByHand(file, pk.PublicKey); err != nil {
			t.Fatalf("%s: the signed record does not verify by hand: %v", name, err)
		}
		// Any field changed: no longer valid.
		var doc any
		dec := json.NewDecoder(bytes.NewReader(raw.Proof))
		dec.UseNumber()
		_ = dec.Decode(&doc)
		var paths []string
		leaves(doc, "", &paths)
		if len(paths) < 20 {
			t.Fatalf("%s: only %d values in the proof", name, len(paths))
		}
		for _, path := range paths {
			if err := verifyByHand(tampered(t, file, path), pk.PublicKey); err == nil {
				t.Errorf("%s: changing %s leaves the record valid", name, path)
			}
		}

		// The CLI, offline: with the public key, and with the keys.
		dir := t.TempDir()
		good, bad := filepath.Join(dir, "proof.json"), filepath.Join(dir, "tampered.json")
		if err := os.WriteFile(good, file, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bad, tampered(t, file, "/deletion_state"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, run := range []struct {
			args []string
			env  []string
			want int
		}{
			{[]string{"proof", "verify", good, "--public-key", pk.PublicKey}, nil, 0},
			{[]string{"proof", "verify", bad, "--public-key", pk.PublicKey}, nil, 1},
			{[]string{"proof", "verify", good}, []string{"CODEWATCH_SIGNING_KEY=" + p.env["CODEWATCH_SIGNING_KEY"]}, 0},
			{[]string{"proof", "verify", bad}, []string{"CODEWATCH_SIGNING_KEY=" + p.env["CODEWATCH_SIGNING_KEY"]}, 1},
		} {
			res := runCLI(t, run.env, run.args...)
			p.record("deletion record", "codewatch "+strings.Join(run.args[:2], " "), []byte(res.Stdout+res.Stderr))
			if res.Code != run.want {
				t.Errorf("codewatch %s: exit %d, want %d\n%s%s", strings.Join(run.args, " "), res.Code, run.want, res.Stdout, res.Stderr)
			}
		}
	}
}

// `codewatch keys generate --signing` prints a CODEWATCH_SIGNING_KEY entry
// and, on stderr, the public key the API will show.
func TestKeysGenerateSigning(t *testing.T) {
	t.Parallel()
	res := runCLI(t, nil, "keys", "generate", "--signing", "sig1")
	if res.Code != 0 {
		t.Fatalf("exit %d: %s%s", res.Code, res.Stdout, res.Stderr)
	}
	entry := strings.TrimSpace(res.Stdout)
	kr, err := proof.ParseKeys(entry)
	if err != nil || kr.Signer().ID != "sig1" {
		t.Fatalf("%q: %v", entry, err)
	}
	if !strings.Contains(res.Stderr, kr.Signer().PublicBase64()) {
		t.Fatalf("stderr lacks the public key: %s", res.Stderr)
	}
	if strings.Contains(res.Stderr, entry[len("sig1:"):]) {
		t.Fatalf("stderr shows the seed")
	}
}

// `codewatch export` writes the deletions export from the database.
func TestExportCommand(t *testing.T) {
	t.Parallel()
	db := pgtest.NewURL(t)
	res := runCLI(t, []string{"DATABASE_URL=" + db, "CODEWATCH_DATA_KEYS=" + newDataKey(t, "k1")}, "export", "--since", "2026-01-01")
	if res.Code != 0 || !strings.HasPrefix(res.Stdout, "access_code_id,access_code_name,device_id,") {
		t.Fatalf("exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if res := runCLI(t, []string{"DATABASE_URL=" + db}, "export", "--format", "xlsx"); res.Code != 2 {
		t.Fatalf("--format xlsx: exit %d", res.Code)
	}
}
