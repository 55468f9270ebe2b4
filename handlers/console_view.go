package handlers

// What the console's templates render: the page frame, the views of codes,
// events, alerts and quarantined deliveries, and the template functions.
//
// newCodeView is where a code's optional parts come from (severity, the
// lock's connectivity, Seam's API view, a deletion request): the templates
// show each part only when its view field is set.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
)

//go:embed console
var consoleFS embed.FS

// page is what every console template receives.
type page struct {
	Title   string
	Nav     []navItem
	Session *session
	CSRF    string
	Flash   *flash
	// Q is the search box's text.
	Q string
	// Live pages update themselves every Refresh seconds.
	Live    bool
	Refresh int
	Now     time.Time
	Data    any
}

type navItem struct {
	Label, URL string
	Current    bool
}

// consoleNav is the console's menu, in order. A new section (issue 12's
// locks) is one more entry here.
func consoleNav() []navItem {
	return []navItem{
		{Label: "Triage", URL: consolePrefix + "/"},
		{Label: "Codes", URL: consolePrefix + "/codes"},
		{Label: "Locks", URL: consolePrefix + "/locks"},
		{Label: "Quarantine", URL: consolePrefix + "/quarantine"},
		{Label: "Alerts", URL: consolePrefix + "/alerts"},
	}
}

// page frames data for a signed-in request; nav is the menu entry to mark
// current ("triage", "codes"...).
func (k *console) page(c echo.Context, title, nav string, live bool, data any) page {
	p := page{Title: title, Data: data, Live: live, Refresh: int(k.Refresh / time.Second), Now: k.Now().UTC()}
	if s := sessionOf(c); s != nil {
		p.Session, p.CSRF = s, s.CSRF()
		if c.Request().Header.Get(liveHeader) == "" {
			p.Flash = k.takeFlash(c)
		}
	}
	for _, n := range consoleNav() {
		n.Current = strings.EqualFold(n.Label, nav)
		p.Nav = append(p.Nav, n)
	}
	if sd, ok := data.(searchData); ok {
		p.Q = sd.Q
	}
	return p
}

// pages holds one parsed template set per page, and the assets.
type pages struct {
	sets   map[string]*template.Template
	assets map[string]asset
}

type asset struct {
	body        []byte
	hash        string
	contentType string
}

func mustParsePages(now func() time.Time) *pages {
	p := &pages{sets: map[string]*template.Template{}, assets: map[string]asset{}}
	for _, name := range []string{"console.css", "console.js"} {
		b, err := consoleFS.ReadFile("console/" + name)
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		p.assets[name] = asset{body: b, hash: hex.EncodeToString(sum[:6]), contentType: mime.TypeByExtension(path.Ext(name))}
	}
	funcs := templateFuncs(p, now)
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(consoleFS, "console/layout.html"))
	files, err := fs.Glob(consoleFS, "console/*.html")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		p.sets[name] = template.Must(template.Must(base.Clone()).ParseFS(consoleFS, f))
	}
	return p
}

// render writes a whole page or nothing: a template error is a 500, not
// half a page.
func (k *console) render(c echo.Context, status int, name string, p page) error {
	var buf bytes.Buffer
	entry := "layout"
	if name == "reopen" {
		entry = "reopen"
	}
	if err := k.pages.sets[name].ExecuteTemplate(&buf, entry, p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// asset serves the embedded CSS and JavaScript; a URL naming the current
// content hash may be cached for good.
func (k *console) asset(c echo.Context) error {
	a, ok := k.pages.assets[c.Param("name")]
	if !ok {
		return echo.ErrNotFound
	}
	if c.QueryParam("v") == a.hash {
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}

func templateFuncs(p *pages, now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) string {
			return consolePrefix + "/assets/" + name + "?v=" + p.assets[name].hash
		},
		"when":        func(t time.Time) template.HTML { return when(t, now()) },
		"whenp":       func(t *time.Time) template.HTML { return whenPtr(t, now(), "—") },
		"exact":       exact,
		"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"clock":       func(t time.Time) string { return t.UTC().Format("15:04:05") + " UTC" },
		"dur":         humanDuration,
		"stateLabel":  stateLabel,
		"stateClass":  stateClass,
		"reasonLabel": reasonLabel,
		"eventLabel":  eventLabel,
		"alertLabel":  alertLabel,
		"statusLabel": deliveryLabel,
		"codeURL":     codeURL,
		"lockURL":     lockURL,
		"deref": func(s *string) string {
			if s == nil {
				return ""
			}
			return *s
		},
		"codesURL": func(kv ...string) string {
			q := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				q.Set(kv[i], kv[i+1])
			}
			return consolePrefix + "/codes?" + q.Encode()
		},
		"deref2": func(b *bool) bool { return b != nil && *b },
		"onDevice": func(b *bool) string {
			switch {
			case b == nil:
				return "not known"
			case *b:
				return "yes"
			}
			return "no"
		},
		"reasons": reasonsByUrgency,
	}
}

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

func stateLabel(s lifecycle.DeletionState) string {
	if l, ok := stateLabels[s]; ok {
		return l
	}
	return string(s)
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

func reasonLabel(r string) string {
	if l, ok := reasonLabels[r]; ok {
		return l
	}
	return r
}

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

func eventLabel(t string) string {
	if l, ok := eventLabels[t]; ok {
		return l
	}
	return t
}

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

func alertLabel(t string) string {
	switch t {
	case lifecycle.AlertTrouble:
		return "Needs troubleshooting"
	case lifecycle.AlertResolved:
		return "Resolved"
	case lifecycle.AlertReminder:
		return "Reminder"
	}
	return t
}

func deliveryLabel(s string) string {
	switch s {
	case lifecycle.DeliveryPending:
		return "Pending"
	case lifecycle.DeliverySent:
		return "Delivered"
	case lifecycle.DeliveryGivenUp:
		return "Given up"
	}
	return s
}

// --- URLs ---

func codeURL(id string) string { return consolePrefix + "/codes/" + url.PathEscape(id) }

// lockURL is a lock's page.
func lockURL(deviceID string) string { return consolePrefix + "/locks/" + url.PathEscape(deviceID) }

// --- views ---

// countView is one number on the home page, linking to what it counts.
type countView struct {
	Label, URL, Class string
	N                 int64
}

func stateCounts(sum *lifecycle.StatusSummary) []countView {
	out := make([]countView, 0, len(lifecycle.States))
	for _, st := range lifecycle.States {
		out = append(out, countView{Label: stateLabel(st), Class: stateClass(st), N: sum.DeletionStates[st],
			URL: consolePrefix + "/codes?" + url.Values{"state": {string(st)}}.Encode()})
	}
	return out
}

func reasonCounts(sum *lifecycle.StatusSummary) []countView {
	var out []countView
	for _, r := range reasonsByUrgency() {
		out = append(out, countView{Label: reasonLabel(r), Class: "reason", N: sum.ByReason[r],
			URL: consolePrefix + "/?" + url.Values{"reason": {r}}.Encode()})
	}
	return out
}

// seamMessage is one of Seam's errors or warnings.
type seamMessage struct {
	Level string // error or warning
	Scope string // access code, device, connected account
	Code  string // Seam's error_code or warning_code
	Text  string
}

// seamMessages reads Seam's errors and warnings out of details
// (troubleshooting_details, or an event's details): errors first.
func seamMessages(details json.RawMessage) []seamMessage {
	if len(details) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(details, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		ei, ej := strings.HasSuffix(keys[i], "_errors"), strings.HasSuffix(keys[j], "_errors")
		if ei != ej {
			return ei
		}
		return keys[i] < keys[j]
	})
	var out []seamMessage
	for _, key := range keys {
		scope, ok := strings.CutSuffix(key, "_errors")
		level := "error"
		if !ok {
			if scope, ok = strings.CutSuffix(key, "_warnings"); !ok {
				continue
			}
			level = "warning"
		}
		var items []struct {
			Message     string `json:"message"`
			ErrorCode   string `json:"error_code"`
			WarningCode string `json:"warning_code"`
		}
		if json.Unmarshal(m[key], &items) != nil {
			continue
		}
		for _, it := range items {
			code := it.ErrorCode
			if code == "" {
				code = it.WarningCode
			}
			if it.Message == "" && code == "" {
				continue
			}
			out = append(out, seamMessage{Level: level, Scope: strings.ReplaceAll(scope, "_", " "), Code: code, Text: it.Message})
		}
	}
	return out
}

// lockView is a code's lock.
type lockView struct {
	ID, URL string
	// Status is "online", "offline" or "" when not known (issue 12 fills
	// it from the code's lock_online).
	Status string
}

// fact is one more labelled line on a code's page.
type fact struct {
	Label, Value string
}

// seamView is what Seam's API showed of the code when codewatch last
// polled it (issue 11).
type seamView struct {
	PolledAt  time.Time
	Found     bool
	Status    string
	Messages  []seamMessage
	RequestID string
	// Error is the newest lookup's, when it gave no evidence.
	Error *lifecycle.LookupError
}

// requestView is a deletion codewatch asked Seam for (issue 11).
type requestView struct {
	RequestedAt     time.Time
	RequestedBy     string
	ActionAttemptID string
	Status          string
	Error           string
	EndedAt         *time.Time
}

// codeView is a code as the console shows it.
type codeView struct {
	*lifecycle.AccessCode
	URL    string
	Reason string
	// Severity is issue 12's troubleshooting_severity ("critical",
	// "warning"); "" shows none.
	Severity string
	Lock     lockView
	// Messages are Seam's errors and warnings behind the trouble.
	Messages []seamMessage
	NextStep string
	// ConfirmedBy says what confirmed the removal (issue 11: "webhook" or
	// "poll"); "" shows none.
	ConfirmedBy string
	// Confirmation names the evidence that confirmed the removal ("" shows
	// none).
	Confirmation string
	// Seam and Request are issue 11's seam block and deletion request;
	// nil shows none.
	Seam    *seamView
	Request *requestView
	// Facts are more labelled lines for the code's page.
	Facts []fact
}

// newCodeView is the one place a code becomes what the pages show. Fields
// that later issues add to lifecycle.AccessCode are mapped here: severity
// and lock_online (issue 12) into Severity and Lock.Status, confirmed_by and
// the seam block and deletion request (issue 11) into ConfirmedBy, Seam
// and Request.
func newCodeView(c *lifecycle.AccessCode) codeView {
	v := codeView{AccessCode: c, URL: codeURL(c.AccessCodeID)}
	if c.TroubleshootingReason != nil {
		v.Reason = *c.TroubleshootingReason
	}
	lock := lifecycle.LockStatus{Online: c.LockOnline}
	if c.DeviceID != nil {
		v.Lock = lockView{ID: *c.DeviceID, URL: lockURL(*c.DeviceID)}
		if c.LockOnline != nil {
			v.Lock.Status = map[bool]string{true: "online", false: "offline"}[*c.LockOnline]
		}
	}
	if c.TroubleshootingSeverity != nil {
		v.Severity = *c.TroubleshootingSeverity
	}
	v.Messages = seamMessages(c.TroubleshootingDetails)
	if c.NeedsTroubleshooting {
		v.NextStep = lifecycle.TroubleNextStep(v.Reason, c.TroubleshootingDetails, lock)
	}
	if c.ConfirmedBy != nil {
		v.ConfirmedBy = *c.ConfirmedBy
	}
	if sv := c.Seam; sv != nil {
		d, _ := json.Marshal(map[string]any{"access_code_errors": sv.Errors, "access_code_warnings": sv.Warnings})
		v.Seam = &seamView{PolledAt: sv.PolledAt, Found: sv.Found, Status: sv.Status, Messages: seamMessages(d),
			RequestID: sv.RequestID, Error: sv.Error}
	}
	if cf := c.Confirmation; cf != nil {
		v.Confirmation = lifecycle.ConfirmationText(cf)
	}
	if r := c.DeletionRequest; r != nil {
		v.Request = &requestView{RequestedAt: r.RequestedAt, RequestedBy: r.RequestedBy, ActionAttemptID: r.ActionAttemptID,
			Status: r.Status, EndedAt: r.EndedAt}
		if r.Error != nil {
			v.Request.Error = r.Error.Message
		}
	}
	return v
}

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

// eventView is one event in a code's timeline.
type eventView struct {
	lifecycle.EvidenceEvent
	Label, Class string
	Messages     []seamMessage
	RawJSON      string
	RawNote      string
	// Lag is how long after it occurred codewatch received it (0 under a
	// second).
	Lag time.Duration
}

func newEventView(e lifecycle.EvidenceEvent) eventView {
	v := eventView{EvidenceEvent: e, Label: eventLabel(e.EventType), Class: eventClass(e.EventType),
		Messages: seamMessages(e.Details)}
	if lag := e.ReceivedAt.Sub(e.OccurredAt); lag >= time.Second {
		v.Lag = lag
	}
	if e.RawUnavailable != "" {
		v.RawNote = "The stored " + e.RawUnavailable + "."
	} else {
		v.RawJSON, v.RawNote = maskedJSON(e.Raw)
	}
	v.Raw = nil // only the masked copy reaches a template
	return v
}

// alertView is one alert of a code, with its deliveries.
type alertView struct {
	AlertID, Type, Message string
	Sequence               int64
	CreatedAt              time.Time
	Deliveries             []lifecycle.AlertDelivery
}

func alertViews(ds []lifecycle.AlertDelivery) []alertView {
	var out []alertView
	for _, d := range ds {
		if n := len(out); n == 0 || out[n-1].AlertID != d.AlertID {
			var p struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(d.Payload, &p)
			out = append(out, alertView{AlertID: d.AlertID, Type: d.Type, Message: p.Message, Sequence: d.Sequence, CreatedAt: d.CreatedAt})
		}
		out[len(out)-1].Deliveries = append(out[len(out)-1].Deliveries, d)
	}
	return out
}

// quarantineView is one quarantined delivery, its body masked.
type quarantineView struct {
	lifecycle.QuarantinedDelivery
	RawJSON, RawNote string
}

func newQuarantineView(q lifecycle.QuarantinedDelivery) quarantineView {
	v := quarantineView{QuarantinedDelivery: q}
	if q.Body != nil {
		v.RawJSON, v.RawNote = maskedJSON([]byte(*q.Body))
	} else {
		v.RawNote = "The body is not text; it is not shown."
	}
	v.Body = nil
	return v
}

// tabView is one status tab of the alerts page.
type tabView struct {
	Status, Label string
	N             int64
}
