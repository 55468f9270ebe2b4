package seam_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// The embedded list is Seam's: 109 distinct types, each shaped like one, and
// it holds every type codewatch's rules act on.
func TestEventTypes(t *testing.T) {
	types := seam.EventTypes()
	if len(types) != 109 {
		t.Fatalf("%d event types, want Seam's 109", len(types))
	}
	shape := regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)+$`)
	seen := map[string]bool{}
	for _, typ := range types {
		if !shape.MatchString(typ) || seen[typ] {
			t.Errorf("bad or repeated event type %q", typ)
		}
		seen[typ] = true
		if !seam.KnownEventType(typ) {
			t.Errorf("KnownEventType(%q) = false", typ)
		}
	}
	for _, typ := range []string{lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeRemovedFromDevice,
		lifecycle.TypeDeleted, lifecycle.TypeDelayInRemoving, lifecycle.TypeFailedToRemove, lifecycle.TypeDeletedExternally,
		"lock.locked", "lock.unlocked"} {
		if !seam.KnownEventType(typ) {
			t.Errorf("%s is not on the list", typ)
		}
	}
	for _, typ := range []string{"", "access_code.delted", "access_code", "ACCESS_CODE.DELETED", " access_code.deleted"} {
		if seam.KnownEventType(typ) {
			t.Errorf("KnownEventType(%q) = true", typ)
		}
	}
	// The caller's copy is its own.
	types[0] = "changed"
	if seam.EventTypes()[0] == "changed" || slices.Contains(seam.EventTypes(), "changed") {
		t.Error("EventTypes returns the package's own slice")
	}
}

func TestClosestEventType(t *testing.T) {
	for typo, want := range map[string]string{
		"access_code.delted":              "access_code.deleted",
		"access_code.deleted":             "access_code.deleted",
		"access_code.removed_from_devise": "access_code.removed_from_device",
		"acess_code.set_on_device":        "access_code.set_on_device",
		"lock.unlockd":                    "lock.unlocked",
	} {
		if got := seam.ClosestEventType(typo); got != want {
			t.Errorf("ClosestEventType(%q) = %q, want %q", typo, got, want)
		}
	}
}
