package seamevent_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// The embedded list is Seam's: 109 distinct types, each shaped like one, and
// it holds every type codewatch's rules act on.
func TestEventTypes(t *testing.T) {
	types := seamevent.EventTypes()
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
		if !seamevent.KnownEventType(typ) {
			t.Errorf("KnownEventType(%q) = false", typ)
		}
	}
	for _, typ := range []string{lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeRemovedFromDevice,
		lifecycle.TypeDeleted, lifecycle.TypeDelayInRemoving, lifecycle.TypeFailedToRemove, lifecycle.TypeDeletedExternally,
		"lock.locked", "lock.unlocked"} {
		if !seamevent.KnownEventType(typ) {
			t.Errorf("%s is not on the list", typ)
		}
	}
	for _, typ := range []string{"", "access_code.delted", "access_code", "ACCESS_CODE.DELETED", " access_code.deleted"} {
		if seamevent.KnownEventType(typ) {
			t.Errorf("KnownEventType(%q) = true", typ)
		}
	}
	// The caller's copy is its own.
	types[0] = "changed"
	if seamevent.EventTypes()[0] == "changed" || slices.Contains(seamevent.EventTypes(), "changed") {
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
		if got := seamevent.ClosestEventType(typo); got != want {
			t.Errorf("ClosestEventType(%q) = %q, want %q", typo, got, want)
		}
	}
}

// A code's derived device is the same every time, a UUID, and differs
// between codes.
func TestDeviceIDFor(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := seamevent.NewID(), seamevent.NewID()
	if seamevent.DeviceIDFor(a) != seamevent.DeviceIDFor(a) {
		t.Fatal("not deterministic")
	}
	if seamevent.DeviceIDFor(a) == seamevent.DeviceIDFor(b) {
		t.Fatal("two codes, one device")
	}
	for _, id := range []string{a, b, "ac-1", ""} {
		if d := seamevent.DeviceIDFor(id); !uuid.MatchString(d) {
			t.Errorf("DeviceIDFor(%q) = %q, not a version 5 UUID", id, d)
		}
	}
	// Fixed, so a code sent today and tomorrow (or by another checkout)
	// keeps its device.
	if got := seamevent.DeviceIDFor("727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e"); got != "882b6139-671b-502b-99a8-c0a5153f993c" {
		t.Errorf("DeviceIDFor(README's example) = %s", got)
	}
}
