package seam

import (
	_ "embed"
	"slices"
	"strings"
)

// event_types.txt is every event_type Seam can send, one a line, in Seam's
// order: a copy of the project's Seam reference (shared/seam/event_types.txt,
// read from @seamapi/types 1.977.0). When Seam adds types, replace the file.
//
//go:embed event_types.txt
var eventTypesFile string

var (
	eventTypes = parseEventTypes(eventTypesFile)
	knownTypes = func() map[string]bool {
		m := make(map[string]bool, len(eventTypes))
		for _, t := range eventTypes {
			m[t] = true
		}
		return m
	}()
)

func parseEventTypes(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// EventTypes returns every event type Seam can send, in Seam's order. The
// slice is the caller's own.
func EventTypes() []string { return slices.Clone(eventTypes) }

// KnownEventType reports whether Seam can send an event of type t.
func KnownEventType(t string) bool { return knownTypes[t] }

// ClosestEventType returns the known event type nearest to t by edit
// distance (the first in Seam's order on a tie), to suggest for a typo.
func ClosestEventType(t string) string {
	best, bestD := "", -1
	for _, k := range eventTypes {
		if d := editDistance(t, k); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes (event
// types are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
