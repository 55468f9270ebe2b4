package console

// How values read on a page: times, labels of states, reasons and events,
// and stored bodies as masked, indented JSON.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

// --- times ---

// humanDuration is d for people: "45 s", "12 min", "3 h 12 min", "2 d 4 h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	case d < 30*24*time.Hour:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%d d", days)
		}
		return fmt.Sprintf("%d d %d h", days, h)
	}
	return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
}

// relative is "3 h 12 min ago", "in 40 s" or "just now", against now.
func relative(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d > -5*time.Second && d < 5*time.Second:
		return "just now"
	case d < 0:
		return "in " + humanDuration(d)
	}
	return humanDuration(d) + " ago"
}

func exact(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// inZone is t in the lock's time zone (issue 22), with UTC on hover; in UTC
// when the lock's zone is not known.
func inZone(t time.Time, tz *string) template.HTML {
	loc := lifecycle.Zone(tz)
	if loc == time.UTC {
		return template.HTML(template.HTMLEscapeString(exact(t)))
	}
	return template.HTML(fmt.Sprintf(`<span class="local" title="%s">%s</span>`, exact(t),
		template.HTMLEscapeString(t.In(loc).Format("2006-01-02 15:04:05 MST")+" ("+loc.String()+")")))
}

// when is a <time> with the age as text and the exact time on hover (the
// page's script shows it in the reader's time zone).
func when(t, now time.Time) template.HTML {
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
		t.UTC().Format(time.RFC3339Nano), exact(t), template.HTMLEscapeString(relative(t, now))))
}

func whenPtr(t *time.Time, now time.Time, none string) template.HTML {
	if t == nil {
		return template.HTML(template.HTMLEscapeString(none))
	}
	return when(*t, now)
}

// --- labels ---

var stateLabels = map[lifecycle.DeletionState]string{
	"active":                 "Active",
	"deletion_requested":     "Deletion requested",
	"awaiting_removal":       "Awaiting removal",
	"delayed":                "Delayed",
	"failed":                 "Failed",
	"removed":                "Removed from the lock",
	"deleted_not_programmed": "Deleted, never on the lock",
}

func stateLabel(s lifecycle.DeletionState) string { return label(stateLabels, s) }

// label is m's label for k, or k itself where m has none.
func label[K ~string](m map[K]string, k K) string {
	if l, ok := m[k]; ok {
		return l
	}
	return string(k)
}

// stateClass colours a state: bad (trouble possible), wait, ok, or plain.
func stateClass(s lifecycle.DeletionState) string {
	switch s {
	case "delayed", "failed":
		return "bad"
	case "awaiting_removal", "deletion_requested":
		return "wait"
	case "removed", "deleted_not_programmed":
		return "ok"
	}
	return "plain"
}

var reasonLabels = map[string]string{
	"used_after_deletion":  "Used after deletion",
	"still_on_lock":        "Still on the lock",
	"failed_to_remove":     "Removal failed",
	"delete_action_failed": "Delete request failed",
	"removal_delayed":      "Removal delayed",
	"removal_overdue":      "Removal overdue",
}

// reasonsByUrgency is every reason, the most urgent first.
func reasonsByUrgency() []string {
	out := slices.Clone(lifecycle.ReasonsByUrgency)
	for _, r := range lifecycle.Reasons {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func reasonLabel(r string) string { return label(reasonLabels, r) }

var eventLabels = map[string]string{
	"access_code.created":                       "Created in Seam",
	"access_code.changed":                       "Changed in Seam",
	"access_code.scheduled_on_device":           "Scheduled on the lock",
	"access_code.set_on_device":                 "Set on the lock",
	"access_code.deleted":                       "Deleted in Seam",
	"access_code.removed_from_device":           "Removed from the lock",
	"access_code.delay_in_removing_from_device": "Seam reports a delay removing it",
	"access_code.failed_to_remove_from_device":  "Seam failed to remove it",
	"access_code.deleted_external_to_seam":      "Deleted outside Seam",
	"access_code.delay_in_setting_on_device":    "Seam reports a delay setting it",
	"access_code.failed_to_set_on_device":       "Seam failed to set it",
	"access_code.unmanaged.created":             "Unmanaged code found on the lock",
	"lock.unlocked":                             "Lock unlocked",
	"lock.locked":                               "Lock locked",
	"lock.access_denied":                        "Lock refused the code",
	// codewatch's own evidence from Seam's API (issue 11, source "poll").
	"codewatch.deletion_requested":    "Deletion requested by codewatch",
	"codewatch.action_attempt":        "Seam's deletion attempt ended",
	"codewatch.access_code_polled":    "Seam's API still has it",
	"codewatch.access_code_not_found": "Seam's API no longer has it",
}

func eventLabel(t string) string { return label(eventLabels, t) }

// eventClass marks an event in the timeline: trouble, confirm(ation),
// deletion, use of the lock, or other.
func eventClass(t string) string {
	switch {
	case strings.Contains(t, "failed") || strings.Contains(t, "delay"):
		return "trouble"
	case t == "access_code.removed_from_device" || t == "access_code.deleted_external_to_seam" ||
		t == "codewatch.access_code_not_found":
		return "confirm"
	case t == "access_code.deleted" || t == "codewatch.deletion_requested":
		return "deletion"
	case strings.HasPrefix(t, "lock."):
		return "lock"
	}
	return "other"
}

// --- bodies ---

// rawLimit caps the raw JSON a page shows of one body.
const rawLimit = 256 << 10

// maskedJSON is body with every PIN masked (datakeys.MaskPINs), indented
// for reading, and cut at rawLimit.
func maskedJSON(body []byte) (text string, note string) {
	masked := datakeys.MaskPINs(body)
	var buf bytes.Buffer
	asIs := ""
	if indentedOver(masked, 4*rawLimit) {
		// Indenting would cost far more than the page shows (a deeply
		// nested body grows with the square of its depth).
		asIs = " Shown as received: too deeply nested to indent."
		buf.Write(masked)
	} else if json.Indent(&buf, masked, "", "  ") != nil {
		buf.Reset()
		buf.Write(masked)
	}
	if buf.Len() > rawLimit {
		// Cut on a character boundary.
		return strings.ToValidUTF8(buf.String()[:rawLimit], ""), fmt.Sprintf("The first %d KiB of %d KiB.", rawLimit>>10, buf.Len()>>10) + asIs
	}
	return buf.String(), strings.TrimSpace(asIs)
}

// indentedOver reports whether json.Indent with a two-space indent would
// write more than limit bytes for b: each '{', '[', ',' and closing bracket
// outside strings may start a line indented by its depth. It stops reading
// once past limit.
func indentedOver(b []byte, limit int) bool {
	size, depth := len(b), 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		case c == '"':
			inString = true
			continue
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth = max(depth-1, 0)
		case c != ',':
			continue
		}
		if size += 1 + 2*depth; size > limit {
			return true
		}
	}
	return false
}
