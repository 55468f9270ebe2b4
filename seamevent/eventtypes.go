package seamevent

import (
	"crypto/sha1"
	"fmt"

	"github.com/codewatch/codewatch/seam"
)

// Seam's list of event types lives in package seam (Seam's facts); the
// sender checks what it is asked to send against it.

// EventTypes returns every event type Seam can send, in Seam's order
// (seam.EventTypes). The slice is the caller's own.
func EventTypes() []string { return seam.EventTypes() }

// KnownEventType reports whether Seam can send an event of type t
// (seam.KnownEventType).
func KnownEventType(t string) bool { return seam.KnownEventType(t) }

// ClosestEventType returns the known event type nearest to t, to suggest
// for a typo (seam.ClosestEventType).
func ClosestEventType(t string) string { return seam.ClosestEventType(t) }

// deviceNamespace is the UUID namespace of DeviceIDFor (a random constant;
// changing it would move every derived device).
var deviceNamespace = [16]byte{0x3b, 0x8e, 0x51, 0x0c, 0x6d, 0x2f, 0x4a, 0x17, 0x9c, 0x44, 0x0e, 0x7d, 0xa1, 0x95, 0x26, 0xf3}

// DeviceIDFor returns a device id that stands for the lock of accessCodeID:
// a version 5 UUID of the code's id, so every event made for one code names
// the same device (a code lives on one lock) and different codes different
// devices.
func DeviceIDFor(accessCodeID string) string {
	h := sha1.New()
	h.Write(deviceNamespace[:])
	h.Write([]byte(accessCodeID))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
