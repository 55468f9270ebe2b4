package lifecycle

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"plain", 10, "plain"},
		{"plain", 3, "pla"},
		{"plain", 0, ""},
		{"aé", 2, "a"},                             // the cut falls inside é: before it
		{"a€b", 3, "a"},                            // inside a three-byte character
		{"a€b", 4, "a€"},                           // just after it
		{"a\x00b", 10, "a\uFFFDb"},                 // NUL
		{"a\xffb", 10, "a\uFFFDb"},                 // a byte that is no UTF-8
		{"\xe2\x82", 10, "\uFFFD\uFFFD"},           // half a character
		{"\xed\xa0\x80", 10, "\uFFFD\uFFFD\uFFFD"}, // an encoded surrogate
		{"a\x00", 3, "a"},                          // the replacement does not fit
	} {
		if got := CleanText(tc.in, tc.n); got != tc.want {
			t.Errorf("CleanText(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		n := rng.IntN(80)
		got := CleanText(string(b), n)
		if !utf8.ValidString(got) || strings.ContainsRune(got, 0) || len(got) > n {
			t.Fatalf("CleanText(%q, %d) = %q", b, n, got)
		}
		if utf8.Valid(b) && !strings.ContainsRune(string(b), 0) && !strings.HasPrefix(string(b), got) {
			t.Fatalf("CleanText(%q, %d) = %q is not a prefix of valid text", b, n, got)
		}
	}
}

// Seam's texts in codewatch's own events may hold a NUL: the details are
// kept, the NUL replaced.
func TestParseOwnDetailsWithANUL(t *testing.T) {
	d := OwnEvent("cw_attempt_aa_1_error", TypeActionAttempt, foldAt(0), CodeRef{AccessCodeID: "c1"},
		AttemptDetails{ActionAttemptID: "aa_1", Status: "error", Error: &AttemptError{Type: "x", Message: "said \x00"}})
	p, err := Parse(d.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p.Details), `"status":"error"`) || strings.Contains(string(p.Details), `\u0000`) {
		t.Fatalf("details %s", p.Details)
	}
}
