package datakeys_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/codewatch/codewatch/datakeys"
)

const notJSON = `{"masked":"body is not JSON"}`

func TestMaskPINs(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"event code", `{"event_type":"access_code.deleted","code":"4821"}`,
			`{"event_type":"access_code.deleted","code":"••21"}`},
		{"number code", `{"code":4821}`, `{"code":"••21"}`},
		{"short code", `{"code":"12"}`, `{"code":"••"}`},
		{"empty code", `{"code":""}`, `{"code":"••"}`},
		{"null code left alone", `{"code":null,"pin":null}`, `{"code":null,"pin":null}`},
		{"bool code left alone", `{"code":true}`, `{"code":true}`},
		{"pin", `{"device":{"pin":"99887766"}}`, `{"device":{"pin":"••66"}}`},
		{"case folded like encoding/json", `{"Code":"4821","PIN":"1234","cOdE":5555}`, `{"Code":"••21","PIN":"••34","cOdE":"••55"}`},
		{"escaped name", `{"\u0063ode":"4821"}`, `{"\u0063ode":"••21"}`},
		{"escaped value", `{"code":"\u0034\u00382\u0031"}`, `{"code":"••21"}`},
		{"access_code object", `{"access_code":{"access_code_id":"c1","code":"1234","status":"set"},"ok":true}`,
			`{"access_code":{"access_code_id":"c1","code":"••34","status":"set"},"ok":true}`},
		{"objects in arrays", `{"access_codes":[{"code":"1111"},{"x":[{"code":"2222"}]},"3333",{"code":4444}]}`,
			`{"access_codes":[{"code":"••11"},{"x":[{"code":"••22"}]},"3333",{"code":"••44"}]}`},
		{"code holding an object is searched", `{"code":{"pin":"1234","n":1}}`, `{"code":{"pin":"••34","n":1}}`},
		{"code holding an array is searched", `{"code":["1234",{"code":"5678"}]}`, `{"code":["1234",{"code":"••78"}]}`},
		{"duplicates all masked", `{"code":"1234","code":"5678"}`, `{"code":"••34","code":"••78"}`},
		{"value named code is not a field", `{"name":"code","code_name":"1234","x":["code","1234"]}`,
			`{"name":"code","code_name":"1234","x":["code","1234"]}`},
		{"other fields byte for byte",
			"{ \"n\" : 12345678901234567890123, \"f\":1.50e+3,\"s\":\"a\\/b\\u00e9<>&\", \"code\" :\n\t\"4821\" , \"z\":[ ] }",
			"{ \"n\" : 12345678901234567890123, \"f\":1.50e+3,\"s\":\"a\\/b\\u00e9<>&\", \"code\" :\n\t\"••21\" , \"z\":[ ] }"},
		{"hint is escaped", `{"code":"a\"\\"}`, `{"code":"••\"\\"}`},
		{"hint with html characters", `{"code":"x<>"}`, `{"code":"••\u003c\u003e"}`},
		{"top-level scalars", `"4821"`, `"4821"`},
		{"top-level array", `[{"code":"4821"}]`, `[{"code":"••21"}]`},
		{"surrounding whitespace kept", " {\"code\":1234} \n", " {\"code\":\"••34\"} \n"},
		{"not JSON", `code=4821`, notJSON},
		{"truncated", `{"code":"4821"`, notJSON},
		{"trailing data", `{"code":"4821"} {"code":"4821"}`, notJSON},
		{"trailing garbage", `{"a":1}4821`, notJSON},
		{"empty", ``, notJSON},
		{"form-encoded", `code=4821&device_id=d1`, notJSON},
	}
	for _, tt := range tests {
		got := datakeys.MaskPINs([]byte(tt.in))
		if string(got) != tt.want {
			t.Errorf("%s:\n in   %s\n got  %s\n want %s", tt.name, tt.in, got, tt.want)
		}
		if json.Valid([]byte(tt.in)) && !json.Valid(got) {
			t.Errorf("%s: output is not JSON", tt.name)
		}
	}
}

func TestMaskPINsDoesNotAlias(t *testing.T) {
	in := []byte(`{"a":1}`)
	out := datakeys.MaskPINs(in)
	out[0] = 'X'
	if in[0] != '{' {
		t.Fatal("MaskPINs returned its input")
	}
	bad := datakeys.MaskPINs([]byte("x"))
	bad[0] = 'X'
	if string(datakeys.MaskPINs([]byte("x"))) != notJSON {
		t.Fatal("the placeholder is shared")
	}
}

func TestExtractPIN(t *testing.T) {
	tests := []struct {
		in   string
		pin  string
		want bool
	}{
		{`{"event_type":"lock.unlocked","method":"keycode","code":"4821"}`, "4821", true},
		{`{"code":4821}`, "4821", true},
		{`{"code":" 0042 "}`, "0042", true},
		{`{"code":"\u0034821"}`, "4821", true},
		{`{"CODE":"4821"}`, "4821", true},
		{`{"code":"1111","code":"2222"}`, "2222", true},
		{`{"code":null}`, "", false},
		{`{"event_type":"lock.unlocked"}`, "", false},
		{`{"code":""}`, "", false},
		{`{"code":"  "}`, "", false},
		{`{"code":true}`, "", false},
		{`{"code":{"pin":"1"}}`, "", false},
		{`{"code":["4821"]}`, "", false},
		{`{"access_code":{"code":"4821"}}`, "", false}, // top level only
		{`[{"code":"4821"}]`, "", false},
		{`null`, "", false},
		{`{"code":"4821"`, "", false},
		{`code=4821`, "", false},
		{``, "", false},
	}
	for _, tt := range tests {
		pin, ok := datakeys.ExtractPIN([]byte(tt.in))
		if pin != tt.pin || ok != tt.want {
			t.Errorf("ExtractPIN(%s) = %q, %v; want %q, %v", tt.in, pin, ok, tt.pin, tt.want)
		}
	}
}

// maskReference is MaskPINs written the obvious way, on decoded values: the
// fuzz target checks MaskPINs' byte-splicing means the same thing.
func maskReference(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			isPIN := strings.EqualFold(k, "code") || strings.EqualFold(k, "pin")
			switch s := x.(type) {
			case string:
				if isPIN {
					v[k] = datakeys.PinHint(s)
				}
			case json.Number:
				if isPIN {
					v[k] = datakeys.PinHint(string(s))
				}
			default:
				v[k] = maskReference(x)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = maskReference(x)
		}
	}
	return v
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// FuzzMaskPINs checks, for any input doc and PIN:
//   - valid JSON stays valid JSON, and means what the reference masking says;
//   - anything else becomes the placeholder;
//   - masking twice changes nothing more;
//   - a PIN planted in every PIN position (string, number, escaped, nested,
//     in arrays, odd case) leaves no 3-digit run of itself in the output
//     that was not already in doc.
func FuzzMaskPINs(f *testing.F) {
	f.Add([]byte(`{"event_type":"access_code.deleted","code":"4821","x":[1,2.50]}`), uint64(4821))
	f.Add([]byte(`{"access_code":{"code":"1234"},"codes":[{"code":5678}]}`), uint64(987654))
	f.Add([]byte(`[{"pin":"0000"},null,true,"code",{"Code":{"code":"1"}}]`), uint64(12345678))
	f.Add([]byte(`12345678901234567890`), uint64(100))
	f.Add([]byte(`{"s":"\"","\u0063ode":"\\\"1234"}`), uint64(12345690))
	f.Add([]byte(`{"code":"4821"`), uint64(0))
	f.Add([]byte("code=4821"), uint64(4821))
	f.Fuzz(func(t *testing.T, doc []byte, n uint64) {
		out := datakeys.MaskPINs(doc)
		if !json.Valid(doc) {
			if string(out) != notJSON {
				t.Fatalf("non-JSON %q gave %q", doc, out)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("MaskPINs(%q) = %q, not JSON", doc, out)
		}
		if want, got := maskReference(decode(t, doc)), decode(t, out); !reflect.DeepEqual(want, got) {
			t.Fatalf("MaskPINs(%q) = %q\nmeans %#v\nwant  %#v", doc, out, got, want)
		}
		if again := datakeys.MaskPINs(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", doc, out, again)
		}

		// A PIN of 4 to 8 digits, planted everywhere codewatch meets one.
		pin := strconv.FormatUint(n%100_000_000, 10)
		for len(pin) < 4 {
			pin = "0" + pin
		}
		num := pin
		if pin[0] == '0' { // JSON numbers have no leading zeros
			num = "1" + pin[1:]
		}
		escaped := fmt.Sprintf(`\u%04x`, pin[0]) + pin[1:]
		body := []byte(`{"doc":` + string(doc) + `,"code":"` + pin + `","access_code":{"code":` + num +
			`,"pin":"` + escaped + `"},"access_codes":[{"CODE":" ` + pin + ` "},[{"code":"` + pin + `"}]]}`)
		out = datakeys.MaskPINs(body)
		if !json.Valid(out) {
			t.Fatalf("planted body %q masked to non-JSON %q", body, out)
		}
		for _, p := range []string{pin, num} {
			for i := 0; i+3 <= len(p); i++ {
				run := p[i : i+3]
				if bytes.Contains(out, []byte(run)) && !bytes.Contains(doc, []byte(run)) {
					t.Fatalf("PIN %s: %q survives in %q", p, run, out)
				}
			}
		}
		if !bytes.Contains(out, []byte(`"code":"••`+pin[len(pin)-2:]+`"`)) {
			t.Fatalf("no hint in %q", out)
		}
	})
}

// event2K is a Seam-shaped access_code event padded with unknown fields to
// 2 KiB, the size BenchmarkSeal uses.
func event2K() []byte {
	b := []byte(`{"event_id":"4f3c8f2e-3b7a-4d8e-9a51-1f2d3c4b5a69","event_type":"access_code.deleted",` +
		`"workspace_id":"680d7c60-0a92-4e78-85bd-cb45155576b9","device_id":"b2c5d123-c7da-44be-ac72-4ad4ca56dbd8",` +
		`"access_code_id":"9792ea0f-b48d-4fff-9d10-bb08bc1ca16a","code":"4821","created_at":"2026-06-01T10:00:00.000Z",` +
		`"access_code":{"code":"4821","errors":[],"warnings":[{"message":"Delay in removing code from device.","warning_code":"delay_in_removing_from_device"}]}`)
	for i := 0; len(b) < 1900; i++ {
		b = fmt.Appendf(b, `,"extra_%d":{"name":"Guest %d","n":1234567890123,"list":[1,2.5,true,null,"x"]}`, i, i)
	}
	b = append(b, `,"pad":"`...)
	b = append(b, strings.Repeat("x", 2048-len(b)-2)...)
	return append(b, `"}`...)
}

func BenchmarkMaskPINs(b *testing.B) {
	body := event2K()
	if !json.Valid(body) || len(body) != 2048 {
		b.Fatalf("not 2 KiB of JSON: %s", body)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		datakeys.MaskPINs(body)
	}
}
