// Package text makes outside text safe to store and show: valid UTF-8,
// without NUL (Postgres text refuses both), cut on a character boundary.
package text

import (
	"strings"
	"unicode/utf8"
)

// Clip returns s as valid UTF-8 without NUL bytes (invalid sequences become
// U+FFFD, NUL is dropped), cut to at most n bytes on a character boundary,
// with "…" marking a cut when there is room for it.
func Clip(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n
	if n > len(ellipsis) {
		cut = n - len(ellipsis)
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if n > len(ellipsis) {
		return s[:cut] + ellipsis
	}
	return s[:cut]
}
