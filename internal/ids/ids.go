// Package ids makes identifiers shaped like Seam's (UUIDs).
package ids

import (
	"crypto/rand"
	"fmt"
	"time"
)

// New returns a random version 4 UUID.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// NewTimeOrdered returns a version 7 UUID: t's Unix milliseconds, then
// random bits. Ids made later sort later, so rows keyed by them are
// appended to their index rather than written into random pages of it.
func NewTimeOrdered(t time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
