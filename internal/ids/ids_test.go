package ids

import (
	"regexp"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if !shape.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestNewTimeOrdered(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	base := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		id := NewTimeOrdered(base.Add(time.Duration(i) * time.Millisecond))
		if !shape.MatchString(id) || id <= prev {
			t.Fatalf("id %q after %q: wrong shape or order", id, prev)
		}
		prev = id
	}
	if got := NewTimeOrdered(base)[:13]; got != "01a20846-fe00" {
		t.Fatalf("timestamp prefix %s", got)
	}
}
