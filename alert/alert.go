// Package alert delivers the alerts that lifecycle writes to its outbox: a
// dispatcher claims due deliveries, sends each to its sink (signed webhook,
// Slack, log), and records the outcome, retrying failures with exponential
// backoff. A delivery recorded as sent is never repeated; one interrupted
// between sending and recording is repeated with the same alert_id, which the
// receiver can use to drop it.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/verify"
)

// Sink sends one alert somewhere.
type Sink interface {
	Name() string
	Deliver(ctx context.Context, a *lifecycle.AlertPayload, raw []byte) error
}

// Config tunes a Dispatcher.
type Config struct {
	Sinks []Sink
	// Poll is how often the outbox is read.
	Poll time.Duration
	// Lease is how long a claimed delivery is hidden from other dispatchers;
	// longer than any sink's timeout.
	Lease       time.Duration
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *metrics.Metrics
}

// Dispatcher moves alerts from the outbox to their sinks.
type Dispatcher struct {
	pool  *pgxpool.Pool
	cfg   Config
	sinks map[string]Sink
}

// NewDispatcher returns a Dispatcher on pool.
func NewDispatcher(pool *pgxpool.Pool, cfg Config) *Dispatcher {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 2 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{pool: pool, cfg: cfg, sinks: map[string]Sink{}}
	for _, s := range cfg.Sinks {
		d.sinks[s.Name()] = s
	}
	return d
}

// SinkNames lists sink names, for lifecycle.Config.Sinks.
func SinkNames(sinks []Sink) []string {
	out := make([]string, len(sinks))
	for i, s := range sinks {
		out[i] = s.Name()
	}
	return out
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		for {
			n, err := d.DispatchOnce(ctx)
			if err != nil && ctx.Err() == nil {
				d.cfg.Logger.Warn("alert dispatch failed", "error", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type claimed struct {
	alertID  string
	sink     string
	attempts int
	payload  []byte
}

const claimBatch = 50

// DispatchOnce claims due deliveries and attempts each once. It returns how
// many it claimed.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (int, error) {
	now := d.cfg.Now()
	// Claim with SKIP LOCKED and push next_attempt_at past the lease in the
	// same statement: other dispatchers neither wait nor pick these up, and
	// if this process dies they become due again when the lease ends.
	rs, err := d.pool.Query(ctx, `
		UPDATE alert_deliveries d
		SET attempts = d.attempts + 1, next_attempt_at = $2
		FROM (SELECT alert_id, sink FROM alert_deliveries
			WHERE status = 'pending' AND next_attempt_at <= $1
			ORDER BY next_attempt_at LIMIT $3
			FOR UPDATE SKIP LOCKED) due, alerts a
		WHERE d.alert_id = due.alert_id AND d.sink = due.sink AND a.alert_id = d.alert_id
		RETURNING d.alert_id::text, d.sink, d.attempts, a.payload`,
		now, now.Add(d.cfg.Lease), claimBatch)
	if err != nil {
		return 0, err
	}
	var batch []claimed
	for rs.Next() {
		var c claimed
		if err := rs.Scan(&c.alertID, &c.sink, &c.attempts, &c.payload); err != nil {
			rs.Close()
			return 0, err
		}
		batch = append(batch, c)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, err
	}
	for _, c := range batch {
		d.deliver(ctx, c)
	}
	return len(batch), nil
}

func (d *Dispatcher) deliver(ctx context.Context, c claimed) {
	var p lifecycle.AlertPayload
	err := json.Unmarshal(c.payload, &p)
	sink, ok := d.sinks[c.sink]
	switch {
	case err != nil:
		err = fmt.Errorf("stored payload: %w", err)
	case !ok:
		err = fmt.Errorf("sink %q is not configured in this process", c.sink)
	default:
		// A send must end well inside the lease, or another dispatcher could
		// claim the delivery while it is still under way.
		sctx, cancel := context.WithTimeout(ctx, min(10*time.Second, d.cfg.Lease/2))
		err = sink.Deliver(sctx, &p, c.payload)
		cancel()
	}
	now := d.cfg.Now()
	if err == nil {
		if d.cfg.Metrics != nil {
			d.cfg.Metrics.AlertsSent.WithLabelValues(c.sink, p.Type).Inc()
		}
		_, uerr := d.pool.Exec(context.WithoutCancel(ctx), `UPDATE alert_deliveries
			SET status = 'sent', sent_at = $3, last_error = NULL
			WHERE alert_id = $1 AND sink = $2`, c.alertID, c.sink, now)
		if uerr != nil {
			// Sent but not recorded: the lease expires and it is sent again
			// with the same alert_id.
			d.cfg.Logger.Warn("alert sent but not recorded", "alert_id", c.alertID, "sink", c.sink, "error", uerr)
		}
		return
	}
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.AlertsFailed.WithLabelValues(c.sink).Inc()
	}
	wait := d.backoff(c.attempts)
	d.cfg.Logger.Warn("alert delivery failed; will retry", "alert_id", c.alertID, "sink", c.sink,
		"attempt", c.attempts, "retry_in", wait.String(), "error", err)
	_, uerr := d.pool.Exec(context.WithoutCancel(ctx), `UPDATE alert_deliveries
		SET next_attempt_at = $3, last_error = $4
		WHERE alert_id = $1 AND sink = $2 AND status = 'pending'`,
		c.alertID, c.sink, now.Add(wait), truncate(err.Error(), 500))
	if uerr != nil {
		d.cfg.Logger.Warn("cannot record failed delivery", "alert_id", c.alertID, "error", uerr)
	}
}

// backoff doubles from BackoffBase up to BackoffMax, with ±20% jitter so
// replicas retrying one sink spread out.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	w := d.cfg.BackoffBase
	for i := 1; i < attempts && w < d.cfg.BackoffMax; i++ {
		w *= 2
	}
	if w > d.cfg.BackoffMax {
		w = d.cfg.BackoffMax
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(w) * jitter)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// LogSink writes each alert as one structured log line.
type LogSink struct{ Logger *slog.Logger }

// Name implements Sink.
func (LogSink) Name() string { return "log" }

// Deliver implements Sink.
func (s LogSink) Deliver(_ context.Context, a *lifecycle.AlertPayload, _ []byte) error {
	reason := ""
	if a.TroubleshootingReason != nil {
		reason = *a.TroubleshootingReason
	}
	s.Logger.Warn("alert", "type", a.Type, "alert_id", a.AlertID, "access_code_id", a.AccessCodeID,
		"device_id", a.DeviceID, "workspace_id", a.WorkspaceID, "deletion_state", a.DeletionState,
		"troubleshooting_reason", reason, "age_seconds", a.AgeSeconds, "resolution", a.Resolution,
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
	switch a.Type {
	case lifecycle.AlertTrouble:
		b.WriteString(":rotating_light: *Deleted access code not confirmed off the lock*\n")
	case lifecycle.AlertReminder:
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
		}
	}
	fmt.Fprintf(&b, "Access code `%s` on device `%s`", a.AccessCodeID, a.DeviceID)
	if a.DeletedAt != nil {
		fmt.Fprintf(&b, ", deleted %s ago (%s)", humanAge(time.Duration(a.AgeSeconds)*time.Second), a.DeletedAt.UTC().Format(time.RFC3339))
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

// SeamMessages pulls Seam's human messages out of troubleshooting details.
func SeamMessages(details json.RawMessage) []string {
	// details also holds event_id (a string): read only the arrays.
	var d map[string]json.RawMessage
	if len(details) == 0 || json.Unmarshal(details, &d) != nil {
		return nil
	}
	var out []string
	for _, k := range []string{"access_code_errors", "device_errors", "access_code_warnings", "device_warnings"} {
		var items []struct {
			Message     string `json:"message"`
			ErrorCode   string `json:"error_code"`
			WarningCode string `json:"warning_code"`
		}
		if json.Unmarshal(d[k], &items) != nil {
			continue
		}
		for _, item := range items {
			code := item.ErrorCode
			if code == "" {
				code = item.WarningCode
			}
			if item.Message != "" {
				out = append(out, fmt.Sprintf("%q (%s)", item.Message, code))
			}
		}
	}
	return out
}

func humanAge(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

func post(ctx context.Context, client *http.Client, url string, body []byte, h http.Header) error {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "codewatch-alerts/1")
	resp, err := client.Do(req)
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
		return fmt.Errorf("%s answered %d: %s", redactURL(url), resp.StatusCode, strings.TrimSpace(string(snippet)))
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
