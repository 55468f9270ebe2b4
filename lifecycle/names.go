package lifecycle

import (
	"encoding/json"
	"strings"
	"time"
)

// Names are what people call a code and its lock, as Seam knows them: the
// code's name (access_codes/get's name, e.g. "Guest: Smith, 5-8 Dec"), the
// lock's display_name (its nickname, or the lock maker's name for it), its
// location's name and time zone. Each is nil until known; a code first seen
// by its deletion has no name to learn (Seam forgets a deleted code).
type Names struct {
	AccessCodeName *string
	DeviceName     *string
	LocationName   *string
	TimeZone       *string
}

// LockNames is what codewatch keeps of a lock's names (devices/get).
type LockNames struct {
	DeviceName, LocationName, TimeZone, Provider *string
	// CustomMetadata is a JSON object (nil: none).
	CustomMetadata json.RawMessage
}

// CodeDue is a code whose name is due (not fetched yet).
type CodeDue struct {
	AccessCodeID string
	DeviceID     string
	// WorkspaceID is the code's ("" unknown): only codes of the API key's
	// workspace are looked up.
	WorkspaceID string
	// Finished: the code reached a terminal state (removed, or deleted
	// before it was programmed) before codewatch asked: Seam has forgotten
	// it, there is nothing to ask.
	Finished bool
}

// DeviceDue is a lock whose names are due.
type DeviceDue struct {
	DeviceID, WorkspaceID string
}

// MaxNameLength bounds a name codewatch keeps (longer ones are cut).
const MaxNameLength = 500

// CleanName is a name as codewatch keeps it: storable text, trimmed, at
// most MaxNameLength bytes; nil for none.
func CleanName(s string) *string {
	s = strings.TrimSpace(CleanText(s, MaxNameLength))
	if s == "" {
		return nil
	}
	return &s
}

// Apply sets the alert's names (at delivery) and says them in its message.
func (n Names) Apply(p *AlertPayload) {
	p.AccessCodeName, p.DeviceName, p.LocationName = n.AccessCodeName, n.DeviceName, n.LocationName
	p.Message = AlertMessage(*p)
}

// CodeLabel names a code for people: its name and id, or its id alone.
func CodeLabel(id string, name *string) string {
	if name == nil || *name == "" {
		return id
	}
	return "\u201c" + *name + "\u201d (" + id + ")"
}

// LockLabel names a lock for people: "Front door at 12 Elm St", one of the
// two, or "" when neither is known.
func LockLabel(deviceName, locationName *string) string {
	d, l := deref(deviceName), deref(locationName)
	switch {
	case d != "" && l != "":
		return d + " at " + l
	case d != "":
		return d
	}
	return l
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// alertCode is how an alert's message names its code: by name and id, and
// where (the lock's name and location) when known.
func alertCode(p AlertPayload) string {
	s := CodeLabel(p.AccessCodeID, p.AccessCodeName)
	if lock := LockLabel(p.DeviceName, p.LocationName); lock != "" {
		s += " on " + lock
	}
	return s
}

// Zone is the lock's time zone, or UTC when it is unknown or not one Go
// knows.
func Zone(tz *string) *time.Location {
	if tz == nil || *tz == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return time.UTC
	}
	return loc
}
