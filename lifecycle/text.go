package lifecycle

import (
	"strings"
	"unicode/utf8"
)

// CleanText returns outside text (a sink's answer, Seam's message, an error)
// as Postgres text, jsonb and JSON readers all take it: each NUL and each
// byte that is not valid UTF-8 becomes U+FFFD, and the result is cut to at
// most n bytes on a character boundary. Postgres refuses the whole write
// (22021) for a single such byte, so every text codewatch cuts or copies
// from outside into the database goes through here.
func CleanText(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), n))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+size]
		if r == 0 || r == utf8.RuneError && size == 1 {
			piece = string(utf8.RuneError)
		}
		if b.Len()+len(piece) > n {
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// cleanJSON cleans every string (and object key) in a decoded JSON value, so
// that it encodes without \u0000, which jsonb refuses.
func cleanJSON(v any) any {
	switch v := v.(type) {
	case string:
		return CleanText(v, len(v)*3)
	case []any:
		for i := range v {
			v[i] = cleanJSON(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[CleanText(k, len(k)*3)] = cleanJSON(x)
		}
		return out
	}
	return v
}
