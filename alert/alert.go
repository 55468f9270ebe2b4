// Package alert delivers the alerts that the store writes to its outbox: one
// River job per alert and sink sends it (signed webhook, Slack, PagerDuty,
// Opsgenie, Teams, log) and records the outcome, retrying failures with
// exponential backoff until the alert is older than CODEWATCH_ALERT_MAX_AGE
// (or at once when the sink refuses the alert itself), then giving it up.
// Each code's alerts reach each sink in the order they were raised. A
// delivery recorded as sent is never repeated; one interrupted between
// sending and recording (the process died) is repeated with the same
// alert_id, which the receiver can use to drop it.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/verify"
)

// Sink sends one alert somewhere.
type Sink interface {
	Name() string
	Deliver(ctx context.Context, a *lifecycle.AlertPayload, raw []byte) error
}

// SinkNames lists sink names, for the store's Config.Sinks.
func SinkNames(sinks []Sink) []string {
	out := make([]string, len(sinks))
	for i, s := range sinks {
		out[i] = s.Name()
	}
	return out
}

// LogSink writes each alert as one structured log line: trouble at WARN,
// good news (a resolution) at INFO.
type LogSink struct{ Logger *slog.Logger }

// Name implements Sink.
func (LogSink) Name() string { return "log" }

// Deliver implements Sink.
func (s LogSink) Deliver(ctx context.Context, a *lifecycle.AlertPayload, _ []byte) error {
	reason := ""
	if a.TroubleshootingReason != nil {
		reason = *a.TroubleshootingReason
	}
	level := slog.LevelWarn
	if a.Type == lifecycle.AlertResolved {
		level = slog.LevelInfo
	}
	s.Logger.Log(ctx, level, "alert", "type", a.Type, "alert_id", a.AlertID, "access_code_id", a.AccessCodeID,
		"access_code_name", deref(a.AccessCodeName), "device_name", deref(a.DeviceName), "location_name", deref(a.LocationName),
		"device_id", a.DeviceID, "workspace_id", a.WorkspaceID, "deletion_state", a.DeletionState,
		"troubleshooting_reason", reason, "age_seconds", a.AgeSeconds, "resolution", a.Resolution, "sequence", a.Sequence,
		"message", a.Message)
	return nil
}

// WebhookSink POSTs the alert as JSON, signed the Standard Webhooks way with
// the svix library, with the alert_id as webhook-id.
type WebhookSink struct {
	URL    string
	Secret string
	Client *http.Client
	Now    func() time.Time
}

// Name implements Sink.
func (WebhookSink) Name() string { return "webhook" }

// Deliver implements Sink.
func (s WebhookSink) Deliver(ctx context.Context, a *lifecycle.AlertPayload, raw []byte) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	h, err := verify.Sign(s.Secret, a.AlertID, now(), raw)
	if err != nil {
		return err
	}
	return post(ctx, s.Client, s.URL, raw, verify.StandardHeaders(h))
}

// SlackSink posts a message a person can act on to a Slack incoming webhook.
type SlackSink struct {
	URL    string
	Client *http.Client
}

// Name implements Sink.
func (SlackSink) Name() string { return "slack" }

// Deliver implements Sink.
func (s SlackSink) Deliver(ctx context.Context, a *lifecycle.AlertPayload, _ []byte) error {
	text := SlackText(a)
	body, _ := json.Marshal(map[string]any{
		"text": text,
		"blocks": []any{map[string]any{
			"type": "section",
			"text": map[string]any{"type": "mrkdwn", "text": text},
		}},
	})
	return post(ctx, s.Client, s.URL, body, nil)
}

// SlackText renders an alert for people: what, where, how long, Seam's own
// reason and the next step.
func SlackText(a *lifecycle.AlertPayload) string {
	var b strings.Builder
	critical := a.Severity == lifecycle.SeverityCritical
	switch {
	case critical && a.Type != lifecycle.AlertResolved:
		// The worst case: impossible to mistake for routine trouble.
		used := a.TroubleshootingReason != nil && *a.TroubleshootingReason == lifecycle.ReasonUsedAfterDeletion
		if live := lifecycle.LiveCodesWithSamePIN(a.TroubleshootingDetails); len(live) > 0 {
			// A PIN reused on the lock: the live code may explain it.
			b.WriteString(":rotating_light::rotating_light: *CRITICAL: a deleted access code may still be on the lock*")
			if used {
				b.WriteString(" — *the door was opened with its PIN after its deletion*")
			}
			fmt.Fprintf(&b, " — *live code `%s` on the lock has the same PIN*", strings.Join(live, "`, `"))
		} else {
			b.WriteString(":rotating_light::rotating_light: *CRITICAL: a deleted access code is still on the lock*")
			if used {
				b.WriteString(" — *the door was opened with it after its deletion*")
			}
		}
		if a.Type == lifecycle.AlertReminder {
			b.WriteString(" (still unresolved)")
		}
		b.WriteString(" <!channel>\n")
	case a.Type == lifecycle.AlertTrouble:
		b.WriteString(":warning: *Deleted access code not confirmed off the lock*\n")
	case a.Type == lifecycle.AlertReminder:
		b.WriteString(":hourglass: *Still unresolved: deleted access code not confirmed off the lock*\n")
	default:
		b.WriteString(":white_check_mark: *Resolved*: ")
		if a.Resolution == "acknowledged" {
			fmt.Fprintf(&b, "acknowledged by %s", a.AcknowledgedBy)
			if a.Note != "" {
				fmt.Fprintf(&b, " (%q)", a.Note)
			}
			b.WriteString("\n")
		} else {
			fmt.Fprintf(&b, "access code is now `%s`\n", a.DeletionState)
			if a.Confirmation != nil {
				fmt.Fprintf(&b, "Confirmed by: %s\n", lifecycle.ConfirmationText(a.Confirmation))
			}
		}
	}
	b.WriteString(slackWhere(a))
	if a.DeletedAt != nil {
		if a.AgeSeconds < 0 {
			fmt.Fprintf(&b, ", deleted in the future (%s)", a.DeletedAt.UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(&b, ", deleted %s ago (%s)", humanAge(a.AgeSeconds), a.DeletedAt.UTC().Format(time.RFC3339))
		}
	}
	b.WriteString("\n")
	if a.TroubleshootingReason != nil {
		fmt.Fprintf(&b, "Reason: `%s`", *a.TroubleshootingReason)
		if msgs := SeamMessages(a.TroubleshootingDetails); len(msgs) > 0 {
			fmt.Fprintf(&b, ". Seam says: %s", strings.Join(msgs, "; "))
		}
		b.WriteString("\n")
	}
	if a.NextStep != "" && a.Type != lifecycle.AlertResolved {
		fmt.Fprintf(&b, "Next step: %s\n", a.NextStep)
	}
	fmt.Fprintf(&b, "alert_id `%s`", a.AlertID)
	return b.String()
}

// slackWhere names the alert's code and lock, names first and ids after
// them: "Access code *Guest: Smith* (`c1`) on *Front door* at *12 Elm St*
// (`d1`)".
func slackWhere(a *lifecycle.AlertPayload) string {
	var b strings.Builder
	b.WriteString("Access code ")
	if a.AccessCodeName != nil {
		fmt.Fprintf(&b, "*%s* (`%s`)", slackEscape(*a.AccessCodeName), a.AccessCodeID)
	} else {
		fmt.Fprintf(&b, "`%s`", a.AccessCodeID)
	}
	switch {
	case a.DeviceName != nil && a.LocationName != nil:
		fmt.Fprintf(&b, " on *%s* at *%s* (`%s`)", slackEscape(*a.DeviceName), slackEscape(*a.LocationName), a.DeviceID)
	case a.DeviceName != nil:
		fmt.Fprintf(&b, " on *%s* (`%s`)", slackEscape(*a.DeviceName), a.DeviceID)
	case a.LocationName != nil:
		fmt.Fprintf(&b, " on device `%s` at *%s*", a.DeviceID, slackEscape(*a.LocationName))
	default:
		fmt.Fprintf(&b, " on device `%s`", a.DeviceID)
	}
	return b.String()
}

// slackEscape keeps a name from being read as Slack markup: &, < and > are
// escaped as Slack asks, and bold, code and strike marks are dropped.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "*", "", "`", "'", "~", "").Replace(s)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SeamMessages pulls Seam's human messages about the code and its lock out
// of troubleshooting details (lifecycle.SeamMessages): errors first, the
// code's before the lock's.
func SeamMessages(details json.RawMessage) []string {
	var out []string
	for _, m := range lifecycle.SeamMessages(details) {
		if m.Text != "" && (m.Scope == "access_code" || m.Scope == "device") {
			out = append(out, fmt.Sprintf("%q (%s)", m.Text, m.Code))
		}
	}
	return out
}

func humanAge(secs int64) string {
	// In whole seconds: a time.Duration overflows past 292 years.
	switch {
	case secs >= 3600:
		return fmt.Sprintf("%dh%02dm", secs/3600, secs/60%60)
	case secs >= 60:
		return fmt.Sprintf("%dm%02ds", secs/60, secs%60)
	}
	return fmt.Sprintf("%ds", secs)
}

// post sends body and accepts only a 2xx answer. A redirect is not
// followed, whatever client the sink was given: following a 301, 302 or 303
// turns the POST into a GET without the alert (which the other side may
// answer 200: a false "sent"), and a 307 or 308 sends the alert wherever the
// Location says. A 3xx is a failed delivery, retried.
func post(ctx context.Context, client *http.Client, url string, body []byte, h http.Header) error {
	if client == nil {
		client = http.DefaultClient
	}
	noFollow := *client // shares the transport and its connections
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "codewatch-alerts/1")
	resp, err := noFollow.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL)
		}
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		what := strings.TrimSpace(string(snippet))
		if loc, err := resp.Location(); err == nil && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			what = strings.TrimSpace("redirect to " + redactURL(loc.String()) + " not followed; " + what)
		}
		// The answer may hold anything (a cut character, a NUL): the
		// outbox and River store this text.
		return &StatusError{Status: resp.StatusCode,
			msg: fmt.Sprintf("%s answered %d: %s", redactURL(url), resp.StatusCode, lifecycle.CleanText(what, 512))}
	}
	return nil
}

// redactURL keeps the host only: Slack webhook paths are secrets.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			return u[:i+3+j] + "/..."
		}
	}
	return u
}
