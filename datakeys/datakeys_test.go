package datakeys_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/codewatch/codewatch/datakeys"
)

// key returns a deterministic 32-byte key whose bytes start at b.
func key(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func entry(id string, k []byte) string { return id + ":" + base64.StdEncoding.EncodeToString(k) }

func mustParse(t testing.TB, s string) *datakeys.Keyring {
	t.Helper()
	kr, err := datakeys.Parse(s)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return kr
}

func TestParseAcceptsBase64Spellings(t *testing.T) {
	k := key(0xf0) // bytes 0xf0..0x0f: '+' and '/' (or '-' and '_') in the encoding
	for name, enc := range map[string]*base64.Encoding{
		"standard padded":   base64.StdEncoding,
		"standard unpadded": base64.RawStdEncoding,
		"URL-safe padded":   base64.URLEncoding,
		"URL-safe unpadded": base64.RawURLEncoding,
	} {
		s := " k_1-A : " + enc.EncodeToString(k) + " ,\n old:" + base64.StdEncoding.EncodeToString(key(1))
		kr, err := datakeys.Parse(s)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := kr.IDs(); len(got) != 2 || got[0] != "k_1-A" || got[1] != "old" || kr.PrimaryID() != "k_1-A" {
			t.Errorf("%s: ids %v primary %q", name, got, kr.PrimaryID())
		}
		// The same key however spelled: what one spelling seals, another opens.
		_, ct, _ := kr.Seal([]byte("x"), []byte("aad"))
		other := mustParse(t, entry("k_1-A", k))
		if pt, err := other.Open("k_1-A", ct, []byte("aad")); err != nil || string(pt) != "x" {
			t.Errorf("%s: decoded to a different key: %v", name, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(key(1))
	short := base64.StdEncoding.EncodeToString(key(2)[:16])
	hexKey := hex.EncodeToString(key(3))
	tests := []struct {
		in, want string
	}{
		{"", "datakeys: no keys (want id:base64key, comma-separated)"},
		{" \n ", "datakeys: no keys (want id:base64key, comma-separated)"},
		{"k1:" + k1 + ",", "datakeys: key 2: empty entry (stray comma?)"},
		{k1, "datakeys: key 1: want id:base64key, found no ':'"},
		{"k1:" + k1 + "," + k1, "datakeys: key 2: want id:base64key, found no ':'"},
		{":" + k1, "datakeys: key 1: id must be 1-32 characters of A-Za-z0-9_-"},
		{"key one:" + k1, "datakeys: key 1: id must be 1-32 characters of A-Za-z0-9_-"},
		{strings.Repeat("a", 33) + ":" + k1, "datakeys: key 1: id must be 1-32 characters of A-Za-z0-9_-"},
		{k1 + ":k1", "datakeys: key 1: id must be 1-32 characters of A-Za-z0-9_-"}, // swapped
		{"k1:" + k1 + ",k1:" + base64.StdEncoding.EncodeToString(key(9)), "datakeys: key 2 (id k1): duplicate id"},
		{"k1:" + k1 + ",k2:", "datakeys: key 2 (id k2): not 32 bytes of base64 (decodes to 0 bytes)"},
		{"k1:" + k1 + ",k2:" + short, "datakeys: key 2 (id k2): not 32 bytes of base64 (decodes to 16 bytes)"},
		{"k2:" + hexKey, "datakeys: key 1 (id k2): not 32 bytes of base64 (decodes to 48 bytes)"},
		{"k2:" + k1[:20] + "!" + k1[21:], "datakeys: key 1 (id k2): not 32 bytes of base64"},
		{"k2:" + k1 + "==", "datakeys: key 1 (id k2): not 32 bytes of base64"},
	}
	for _, tt := range tests {
		_, err := datakeys.Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tt.in)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q):\n got  %s\n want %s", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error spans lines", tt.in)
		}
		// No 6-character run of any key text may reach the message.
		for _, secret := range []string{k1, short, hexKey, k1[:20] + "!" + k1[21:]} {
			for i := 0; i+6 <= len(secret); i++ {
				if strings.Contains(err.Error(), secret[i:i+6]) {
					t.Errorf("Parse(%q): error %q contains key text %q", tt.in, err, secret[i:i+6])
					break
				}
			}
		}
	}
}

func TestGenerateRoundTrips(t *testing.T) {
	a, err := datakeys.Generate("k-2026_06")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := datakeys.Generate("older")
	if !strings.HasPrefix(a, "k-2026_06:") || len(a) != len("k-2026_06:")+44 {
		t.Fatalf("Generate = %q", a)
	}
	if a[len("k-2026_06:"):] == b[len("older:"):] {
		t.Fatal("two generated keys are equal")
	}
	kr := mustParse(t, a+","+b)
	if kr.PrimaryID() != "k-2026_06" {
		t.Fatalf("primary %q", kr.PrimaryID())
	}
	for _, bad := range []string{"", "a:b", "has space", strings.Repeat("x", 33)} {
		if _, err := datakeys.Generate(bad); err == nil {
			t.Errorf("Generate(%q) succeeded", bad)
		}
	}
}

// Known-answer vectors computed independently (Python's cryptography package)
// fix the ciphertext layout, the AAD encoding and the PIN-hash derivation:
// if one of these changes, rows already stored stop opening or matching.
func TestKnownAnswers(t *testing.T) {
	kr := mustParse(t, "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") // bytes 0..31
	ct, _ := hex.DecodeString("6465666768696a6b6c6d6e6f3339bd091d8c74a41c536ddbee4717d83cb44694bebf059aca8ed1601d0989")
	pt, err := kr.Open("k1", ct, datakeys.AAD("events", "msg_1"))
	if err != nil || string(pt) != `{"code":"1234"}` {
		t.Fatalf("Open(known vector) = %q, %v", pt, err)
	}
	id, sum := kr.PinHash("1234")
	if id != "k1" || hex.EncodeToString(sum) != "269fc5aebe9113d41c31ed2bc76b6ea8fd2e3764c4b4ec204d769885128cc035" {
		t.Fatalf("PinHash(1234) = %s %x", id, sum)
	}
}

// The layout is nonce || GCM ciphertext || tag: plain AES-GCM with the first
// 12 bytes as nonce opens what Seal makes (what a recovery script would do).
func TestSealLayout(t *testing.T) {
	k := key(7)
	kr := mustParse(t, entry("k1", k))
	aad := datakeys.AAD("events", "msg_2")
	id, ct, err := kr.Seal([]byte("hello"), aad)
	if err != nil || id != "k1" {
		t.Fatal(id, err)
	}
	if len(ct) != len("hello")+datakeys.Overhead || datakeys.Overhead != 28 {
		t.Fatalf("len %d", len(ct))
	}
	block, _ := aes.NewCipher(k)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, ct[:12], ct[12:], aad)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("plain GCM: %q %v", pt, err)
	}
	// Fresh nonce each time.
	_, ct2, _ := kr.Seal([]byte("hello"), aad)
	if bytes.Equal(ct[:12], ct2[:12]) || bytes.Equal(ct, ct2) {
		t.Fatal("nonce reused")
	}
	// Empty plaintext is fine; empty AAD is not.
	if _, ct, err := kr.Seal(nil, aad); err != nil || len(ct) != 28 {
		t.Fatalf("empty plaintext: %d %v", len(ct), err)
	}
	if _, _, err := kr.Seal([]byte("x"), nil); !errors.Is(err, datakeys.ErrNoAAD) {
		t.Fatalf("Seal without AAD: %v", err)
	}
}

func TestAADIsUnambiguous(t *testing.T) {
	if bytes.Equal(datakeys.AAD("ab", "c"), datakeys.AAD("a", "bc")) ||
		bytes.Equal(datakeys.AAD("a", ""), datakeys.AAD("a")) ||
		bytes.Equal(datakeys.AAD("events", "m1"), datakeys.AAD("alerts", "m1")) {
		t.Fatal("AAD collides")
	}
	if !bytes.Equal(datakeys.AAD("events", "m1"), datakeys.AAD("events", "m1")) {
		t.Fatal("AAD not deterministic")
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := entry("k1", key(1)), entry("k2", key(2))
	old := mustParse(t, k1)
	aad := datakeys.AAD("events", "msg_old")
	id, ct, _ := old.Seal([]byte("old body"), aad)
	if id != "k1" || old.NeedsRekey("k1") {
		t.Fatalf("sealed under %s; NeedsRekey(k1) = %v", id, old.NeedsRekey("k1"))
	}

	// Rotate: the new key goes first, the old one stays to open old rows.
	rotated := mustParse(t, k2+","+k1)
	if pt, err := rotated.Open("k1", ct, aad); err != nil || string(pt) != "old body" {
		t.Fatalf("old row after rotation: %q %v", pt, err)
	}
	id2, ct2, _ := rotated.Seal([]byte("new body"), aad)
	if id2 != "k2" {
		t.Fatalf("sealed under %s after rotation", id2)
	}
	for keyID, want := range map[string]bool{"k1": true, "k2": false, "": true, "gone": true} {
		if got := rotated.NeedsRekey(keyID); got != want {
			t.Errorf("NeedsRekey(%q) = %v", keyID, got)
		}
	}
	// Re-seal the old row, then drop k1: the old ciphertext's key is gone.
	pt, _ := rotated.Open("k1", ct, aad)
	_, ct, _ = rotated.Seal(pt, aad)
	final := mustParse(t, k2)
	if pt, err := final.Open("k2", ct, aad); err != nil || string(pt) != "old body" {
		t.Fatalf("re-sealed row: %q %v", pt, err)
	}
	if pt, err := final.Open("k2", ct2, aad); err != nil || string(pt) != "new body" {
		t.Fatalf("new row: %q %v", pt, err)
	}
	_, err := final.Open("k1", ct, aad)
	var unknown *datakeys.UnknownKeyError
	if !errors.As(err, &unknown) || unknown.KeyID != "k1" {
		t.Fatalf("Open under a removed key: %v", err)
	}
	if want := `datakeys: key "k1" is no longer configured in CODEWATCH_DATA_KEYS`; err.Error() != want {
		t.Fatalf("message %q", err)
	}
}

func TestTampering(t *testing.T) {
	kr := mustParse(t, entry("k1", key(1))+","+entry("k2", key(2)))
	aad := datakeys.AAD("events", "msg_1")
	_, ct, _ := kr.Seal([]byte(`{"code":"4821","event_type":"access_code.deleted"}`), aad)

	for i := range ct { // every byte: nonce, body and tag
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		if _, err := kr.Open("k1", bad, aad); !errors.Is(err, datakeys.ErrAuth) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	cases := map[string]struct {
		id  string
		ct  []byte
		aad []byte
	}{
		"other row":        {"k1", ct, datakeys.AAD("events", "msg_2")},
		"other table":      {"k1", ct, datakeys.AAD("alerts", "msg_1")},
		"other key":        {"k2", ct, aad},
		"truncated":        {"k1", ct[:len(ct)-1], aad},
		"shorter than tag": {"k1", ct[:27], aad},
		"empty":            {"k1", nil, aad},
		"appended":         {"k1", append(bytes.Clone(ct), 0), aad},
	}
	for name, c := range cases {
		if _, err := kr.Open(c.id, c.ct, c.aad); !errors.Is(err, datakeys.ErrAuth) {
			t.Errorf("%s: %v", name, err)
		}
	}
	var unknown *datakeys.UnknownKeyError
	if _, err := kr.Open("k3", ct, aad); !errors.As(err, &unknown) || unknown.KeyID != "k3" {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := kr.Open("", ct, aad); !errors.As(err, &unknown) || !strings.Contains(err.Error(), "plaintext row") {
		t.Errorf("empty key id: %v", err)
	}
	if _, err := kr.Open("k1", ct, nil); !errors.Is(err, datakeys.ErrNoAAD) {
		t.Errorf("no AAD: %v", err)
	}
	if pt, err := kr.Open("k1", ct, aad); err != nil || !bytes.Contains(pt, []byte("4821")) {
		t.Errorf("the untouched ciphertext no longer opens: %v", err)
	}
}

func TestPinHashes(t *testing.T) {
	k1, k2, k3 := entry("k1", key(1)), entry("k2", key(2)), entry("k3", key(3))
	a := mustParse(t, k1+","+k2+","+k3)
	b := mustParse(t, k3+","+k1+","+k2)

	byID := func(sums []datakeys.PinSum) map[string]string {
		m := map[string]string{}
		for _, s := range sums {
			m[s.KeyID] = hex.EncodeToString(s.Sum)
		}
		return m
	}
	ha, hb := a.PinHashes("4821"), b.PinHashes("4821")
	if len(ha) != 3 || ha[0].KeyID != "k1" || hb[0].KeyID != "k3" {
		t.Fatalf("order: %v / %v", ha, hb)
	}
	ma, mb := byID(ha), byID(hb)
	if fmt.Sprint(ma) != fmt.Sprint(mb) {
		t.Fatalf("hashes depend on key order:\n%v\n%v", ma, mb)
	}
	if ma["k1"] == ma["k2"] || ma["k2"] == ma["k3"] {
		t.Fatal("different keys give the same hash")
	}
	id, sum := b.PinHash("4821")
	if id != "k3" || hex.EncodeToString(sum) != ma["k3"] {
		t.Fatalf("PinHash = %s %x", id, sum)
	}
	// Normalization: surrounding spaces do not matter; anything else does.
	for _, same := range []string{" 4821", "4821\n", "\t4821 "} {
		if _, s := b.PinHash(same); !bytes.Equal(s, sum) {
			t.Errorf("PinHash(%q) differs from PinHash(4821)", same)
		}
	}
	for _, other := range []string{"482", "48210", "04821", "4 821", "abcd"} {
		if _, s := b.PinHash(other); bytes.Equal(s, sum) {
			t.Errorf("PinHash(%q) equals PinHash(4821)", other)
		}
	}
	// A row hashed under k1 before rotation matches the lock's PIN afterwards.
	oldID, oldSum := mustParse(t, k1).PinHash("4821")
	if !b.MatchPIN(" 4821 ", oldID, oldSum) || b.MatchPIN("4822", oldID, oldSum) ||
		b.MatchPIN("4821", "k2", oldSum) || b.MatchPIN("4821", "gone", oldSum) {
		t.Fatal("MatchPIN")
	}
	// Blank PINs hash to nothing and match nothing, even an empty stored sum.
	if id, s := b.PinHash("  "); id != "k3" || s != nil || b.PinHashes("") != nil ||
		b.MatchPIN("", "k3", nil) || b.MatchPIN("", "k3", []byte{}) {
		t.Fatal("blank PIN")
	}
}

func TestPinHint(t *testing.T) {
	for in, want := range map[string]string{
		"4821":      "••21",
		"123":       "••23",
		"12":        "••",
		"1":         "••",
		"":          "••",
		"  98 ":     "••",
		" 4821\n":   "••21",
		"12345678":  "••78",
		"ab\"\\":    "••\"\\",
		"pässwörd":  "••rd",
		"日本語":       "••本語",
		"\xff\xfe1": "••\ufffd1",
	} {
		if got := datakeys.PinHint(in); got != want {
			t.Errorf("PinHint(%q) = %q, want %q", in, got, want)
		}
	}
}

// No way of printing or logging a Keyring shows key material: not %v of a
// value (which reflection would expand) nor any other verb.
func TestKeyringPrintsIDsOnly(t *testing.T) {
	k1, k2 := key(0x41), key(0x90)
	kr := mustParse(t, entry("primary", k1)+","+entry("old", k2))
	var out strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		fmt.Fprintf(&out, verb+"\n", kr)
		fmt.Fprintf(&out, verb+"\n", *kr)
		fmt.Fprintf(&out, verb+"\n", []any{kr, *kr})
		fmt.Fprintf(&out, verb+"\n", struct{ K datakeys.Keyring }{*kr})
	}
	out.WriteString(kr.String() + kr.GoString() + fmt.Sprint(kr.LogValue()))
	slog.New(slog.NewTextHandler(&out, nil)).Info("keys", "kr", kr, "v", *kr)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("keys", "kr", kr)
	s := out.String()
	if !strings.Contains(s, "datakeys.Keyring[primary,old]") || !strings.Contains(s, `"ids":["primary","old"]`) {
		t.Fatalf("ids missing:\n%s", s)
	}
	for _, k := range [][]byte{k1, k2} {
		for _, leak := range []string{
			base64.StdEncoding.EncodeToString(k)[:8], base64.RawURLEncoding.EncodeToString(k)[:8],
			hex.EncodeToString(k)[:8], strings.ToUpper(hex.EncodeToString(k)[:8]), string(k[:4]),
			fmt.Sprint(k[:4])[1:10],
		} {
			if strings.Contains(s, leak) {
				t.Fatalf("output contains key material %q:\n%s", leak, s)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	kr := mustParse(t, entry("k1", key(1))+","+entry("k2", key(2)))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				aad := datakeys.AAD("events", fmt.Sprint(g, i))
				body := []byte(fmt.Sprintf(`{"code":"%04d"}`, i))
				id, ct, err := kr.Seal(body, aad)
				if err != nil {
					t.Error(err)
					return
				}
				if pt, err := kr.Open(id, ct, aad); err != nil || !bytes.Equal(pt, body) {
					t.Errorf("round trip: %v", err)
					return
				}
				if _, s := kr.PinHash(fmt.Sprint(i)); !kr.MatchPIN(fmt.Sprint(i), "k1", s) {
					t.Error("PinHash/MatchPIN")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSeal(b *testing.B) {
	kr := mustParse(b, entry("k1", key(1)))
	body := bytes.Repeat([]byte(`{"code":"4821","x":1}`), 2048/21+1)[:2048]
	aad := datakeys.AAD("events", "msg_2rQ5gYcZ1mY0o0bqCk4fVQ3k9pL")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := kr.Seal(body, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := mustParse(b, entry("k1", key(1)))
	body := bytes.Repeat([]byte("x"), 2048)
	aad := datakeys.AAD("events", "msg_2rQ5gYcZ1mY0o0bqCk4fVQ3k9pL")
	id, ct, _ := kr.Seal(body, aad)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(id, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPinHashes(b *testing.B) {
	kr := mustParse(b, entry("k1", key(1))+","+entry("k2", key(2)))
	b.ReportAllocs()
	for b.Loop() {
		kr.PinHashes("4821")
	}
}
