package datakeys

import (
	"bytes"
	"encoding/json"
	"strings"
)

// notJSON replaces a body that is not JSON: such a body cannot be masked
// field by field, and its bytes may hold a PIN.
const notJSON = `{"masked":"body is not JSON"}`

// isPINField reports whether a member named name holds a PIN when its value
// is a string or a number. Seam puts the PIN in "code" (events, access code
// objects wherever they are nested); "pin" is masked too. The match ignores
// case the way encoding/json does, since anything decoding these bodies into
// a struct would read "Code" or "CODE" as the PIN.
func isPINField(name string) bool {
	return strings.EqualFold(name, "code") || strings.EqualFold(name, "pin")
}

// MaskPINs returns body with the value of every PIN field (see isPINField)
// at any depth — inside nested objects and objects in arrays — replaced by
// its PinHint as a JSON string: "code":"4821" and "code":4821 both become
// "code":"••21". A PIN field whose value is null, a boolean, an object or an
// array is left alone (objects and arrays are searched like any other).
//
// Everything else is copied byte for byte: key order, duplicate keys,
// whitespace, string escapes and number literals (no float64 round trip),
// so unknown fields and large numbers survive exactly. Duplicate PIN fields
// are all masked.
//
// A body that is not valid JSON (including an empty one, or one with
// trailing data) becomes {"masked":"body is not JSON"}, never the original
// bytes. The result never aliases body.
func MaskPINs(body []byte) []byte {
	// Validating first lets the scanner below assume well-formed input, so
	// it can be a few lines and fast: a 2 KiB event is masked in about the
	// time json.Valid takes, where walking encoding/json's Decoder tokens
	// cost over ten times as much. FuzzMaskPINs holds it to a decode-based
	// reference.
	if !json.Valid(body) {
		return []byte(notJSON)
	}
	m := masker{in: body}
	m.value(m.space(0), false)
	return append(m.out, body[m.copied:]...)
}

// masker splices hints into a copy of valid JSON in.
type masker struct {
	in     []byte
	out    []byte // nil until the first PIN
	copied int    // in[:copied] is in out already
}

func (m *masker) space(i int) int {
	for i < len(m.in) && (m.in[i] == ' ' || m.in[i] == '\t' || m.in[i] == '\n' || m.in[i] == '\r') {
		i++
	}
	return i
}

// value scans the value starting at in[i] and returns the index after it.
// When pin is set and the value is a string or a number, it is replaced.
func (m *masker) value(i int, pin bool) int {
	start := i
	switch c := m.in[i]; c {
	case '{':
		i = m.space(i + 1)
		if m.in[i] == '}' {
			return i + 1
		}
		for {
			nameEnd := m.str(i)
			name := m.in[i:nameEnd]
			i = m.space(nameEnd) // at ':'
			i = m.space(i + 1)   // at the value
			i = m.space(m.value(i, isPINName(name)))
			if m.in[i] == '}' {
				return i + 1
			}
			i = m.space(i + 1) // past ','
		}
	case '[':
		i = m.space(i + 1)
		if m.in[i] == ']' {
			return i + 1
		}
		for {
			i = m.space(m.value(i, false))
			if m.in[i] == ']' {
				return i + 1
			}
			i = m.space(i + 1)
		}
	case '"':
		i = m.str(i)
	case 't', 'f', 'n': // true, false, null: never masked
		for i < len(m.in) && 'a' <= m.in[i] && m.in[i] <= 'z' {
			i++
		}
		return i
	default: // a number
		for i < len(m.in) && strings.IndexByte("+-0123456789.eE", m.in[i]) >= 0 {
			i++
		}
	}
	if pin {
		m.mask(start, i)
	}
	return i
}

// str returns the index after the string starting at in[i] (a '"').
func (m *masker) str(i int) int {
	for i++; ; i++ {
		switch m.in[i] {
		case '\\':
			i++ // skip the escaped character; \uXXXX's hex digits are plain
		case '"':
			return i + 1
		}
	}
}

// mask replaces in[start:end], a string or number, by its hint.
func (m *masker) mask(start, end int) {
	lit := m.in[start:end]
	pin := string(lit)
	if lit[0] == '"' {
		pin = "" // a valid string always decodes; "" is the safe fallback
		_ = json.Unmarshal(lit, &pin)
	}
	if m.out == nil {
		m.out = make([]byte, 0, len(m.in))
	}
	m.out = append(m.out, m.in[m.copied:start]...)
	hint, _ := json.Marshal(PinHint(pin)) // a string always marshals
	m.out = append(m.out, hint...)
	m.copied = end
}

// isPINName is isPINField for a raw member name, quotes included. Names
// with escapes (\u0063ode) are decoded first, as encoding/json would.
func isPINName(raw []byte) bool {
	name := raw[1 : len(raw)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return true // cannot happen for valid JSON; mask rather than leak
		}
		return isPINField(s)
	}
	return bytes.EqualFold(name, []byte("code")) || bytes.EqualFold(name, []byte("pin"))
}

// ExtractPIN returns the top-level "code" of an event body, normalized
// (spaces trimmed), when it is a non-blank string or a number. A null,
// missing or other-typed code, or a body that is not a JSON object, gives
// ok false. Like encoding/json (and so like the rest of codewatch), the name
// matches case-insensitively and the last duplicate wins.
func ExtractPIN(body []byte) (pin string, ok bool) {
	var ev struct {
		Code json.RawMessage `json:"code"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || len(ev.Code) == 0 {
		return "", false
	}
	switch c := ev.Code[0]; {
	case c == '"':
		if err := json.Unmarshal(ev.Code, &pin); err != nil {
			return "", false
		}
	case c == '-' || '0' <= c && c <= '9':
		pin = string(ev.Code)
	default: // null, true, false, an object or an array
		return "", false
	}
	pin = normalizePIN(pin)
	return pin, pin != ""
}
