package lifecycle

// On-call rules (issue 23): what a change of trouble sends given what the
// sinks were already told, so a sink that keeps incidents open (PagerDuty,
// Opsgenie) never keeps one for a trouble that has been replaced. Pure: the
// store applies them under the code's row lock.

// SeverityRank orders severities: info < warning < critical; an unknown
// one ranks as warning.
func SeverityRank(s string) int {
	switch s {
	case SeverityInfo:
		return 0
	case SeverityCritical:
		return 2
	}
	return 1
}

// AlertState is what a code's row records of what its sinks were told.
type AlertState struct {
	// Needs and TroubleKey are the code's current trouble.
	Needs      bool
	TroubleKey string
	// AlertedKey is the trouble whose alert went out and is still open at
	// the sinks ("" none).
	AlertedKey string
}

// Gated is what a change of trouble sends.
type Gated struct {
	// Send: the alert goes out; a resolution that does not resolves
	// nothing ever sent.
	Send bool
	// Key is the trouble the alert names: the new trouble of a trouble
	// alert, the resolved one of a resolution.
	Key string
	// PreviousKey is the trouble a trouble alert replaces at the sinks (""
	// none): they close it before raising the new one.
	PreviousKey string
}

// GateTrouble decides a new trouble's alert (Transition said AlertTrouble,
// or a reminder of the current one): it goes out, naming the trouble it
// replaces when the sinks still hold another one open.
func GateTrouble(old AlertState, key string) Gated {
	g := Gated{Send: true, Key: key}
	if old.Needs && old.AlertedKey != key {
		g.PreviousKey = old.AlertedKey
	}
	return g
}

// GateResolved decides a resolution (Transition said AlertResolved, or an
// acknowledgement): it goes out only if the sinks were told of a trouble,
// and names that one.
func GateResolved(old AlertState) Gated {
	if !old.Needs || old.AlertedKey == "" {
		return Gated{}
	}
	return Gated{Send: true, Key: old.AlertedKey}
}
