package proof_test

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"testing"

	"github.com/codewatch/codewatch/proof"
)

// RFC 8785's own examples (sections 3.2.2 and 3.2.3).
func TestCanonicalizeRFC8785Examples(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"3.2.2 values",
			`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{"3.2.3 sorting by UTF-16 code units",
			`{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		{"nested objects and arrays", `{ "b": [ {"z":1, "a":2} ], "a": {} }`, `{"a":{},"b":[{"a":2,"z":1}]}`},
		{"escapes", `"\u0000\u001f\u007f\u2028<>&\b\t\n\f\r"`, "\"\\u0000\\u001f\u007f\u2028<>&\\b\\t\\n\\f\\r\""},
	} {
		got, err := proof.Canonicalize([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

// RFC 8785 Appendix B: IEEE 754 doubles (as hex) and how JCS writes them.
func TestNumberRFC8785AppendixB(t *testing.T) {
	for _, c := range []struct{ hex, want string }{
		{"0000000000000000", "0"},
		{"8000000000000000", "0"},
		{"0000000000000001", "5e-324"},
		{"8000000000000001", "-5e-324"},
		{"7fefffffffffffff", "1.7976931348623157e+308"},
		{"ffefffffffffffff", "-1.7976931348623157e+308"},
		{"4340000000000000", "9007199254740992"},
		{"c340000000000000", "-9007199254740992"},
		{"4430000000000000", "295147905179352830000"},
		{"44b52d02c7e14af5", "9.999999999999997e+22"},
		{"44b52d02c7e14af6", "1e+23"},
		{"44b52d02c7e14af7", "1.0000000000000001e+23"},
		{"444b1ae4d6e2ef4e", "999999999999999700000"},
		{"444b1ae4d6e2ef4f", "999999999999999900000"},
		{"444b1ae4d6e2ef50", "1e+21"},
		{"3eb0c6f7a0b5ed8c", "9.999999999999997e-7"},
		{"3eb0c6f7a0b5ed8d", "0.000001"},
		{"41b3de4355555553", "333333333.3333332"},
		{"41b3de4355555554", "333333333.33333325"},
		{"41b3de4355555555", "333333333.3333333"},
		{"41b3de4355555556", "333333333.3333334"},
		{"41b3de4355555557", "333333333.33333343"},
		{"becbf647612f3696", "-0.0000033333333333333333"},
		{"43143ff3c1cb0959", "1424953923781206.2"},
	} {
		b, err := hex.DecodeString(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(b))
		lit := strconv.FormatFloat(f, 'g', -1, 64)
		got, err := proof.Number(lit)
		if err != nil {
			t.Fatalf("%s (%s): %v", c.hex, lit, err)
		}
		if got != c.want {
			t.Errorf("%s (%s): got %s, want %s", c.hex, lit, got, c.want)
		}
	}
	for _, bad := range []string{"1e400", "-1e400"} {
		if _, err := proof.Number(bad); err == nil {
			t.Errorf("%s: accepted; it is no finite double", bad)
		}
	}
}

func TestCanonicalizeRefuses(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`,    // I-JSON: a name twice
		`{"a":1} {}`,       // trailing data
		"{\"a\":\"\xff\"}", // invalid UTF-8
		`{"a":1`,           // cut short
		`[1e999]`,          // not a double
	} {
		if got, err := proof.Canonicalize([]byte(in)); err == nil {
			t.Errorf("%q: canonicalised to %s; want an error", in, got)
		}
	}
}

func TestIntegersOnly(t *testing.T) {
	got, err := proof.IntegersOnly([]byte(`{"a":1.5,"b":[2,3e2,9007199254740993],"c":"x","d":-9007199254740991}`))
	if err != nil {
		t.Fatal(err)
	}
	canon, err := proof.Canonicalize(got)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"a":"1.5","b":[2,"3e2","9007199254740993"],"c":"x","d":-9007199254740991}`
	if string(canon) != want {
		t.Errorf("got %s, want %s", canon, want)
	}
}
