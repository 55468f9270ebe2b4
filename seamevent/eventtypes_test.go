package seamevent_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamevent"
)

// The sender's list is Seam's (package seam).
func TestEventTypesAreSeams(t *testing.T) {
	if !slices.Equal(seamevent.EventTypes(), seam.EventTypes()) {
		t.Fatal("seamevent.EventTypes differs from seam.EventTypes")
	}
	for _, typ := range []string{"access_code.deleted", "access_code.delted", ""} {
		if seamevent.KnownEventType(typ) != seam.KnownEventType(typ) || seamevent.ClosestEventType(typ) != seam.ClosestEventType(typ) {
			t.Errorf("%q: seamevent and seam disagree", typ)
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
