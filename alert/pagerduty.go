package alert

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
)

// PagerDutyURL is PagerDuty's Events API v2 endpoint.
const PagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// PagerDutySink sends alerts to a PagerDuty service through its Events API
// v2 integration: a trouble triggers an incident whose dedup_key is the
// trouble (trouble_id: reminders land on the same incident), a resolution
// resolves it. When a code's trouble changes, the previous trouble's
// incident is resolved before the new one is triggered, so none is left
// open. 202 is success; 400 (an invalid event) is given up at once, logged;
// 429 and 5xx are retried with the worker's backoff (PagerDuty sends no
// Retry-After).
type PagerDutySink struct {
	// RoutingKey is the integration's key (opaque; in the body, not a
	// header).
	RoutingKey string
	// URL is the Events API endpoint (PagerDutyURL when empty).
	URL string
	// PublicURL is CODEWATCH_PUBLIC_URL: the incident links to the code's
	// console page ("" : no link).
	PublicURL string
	Client    *http.Client
}

// Name implements Sink.
func (PagerDutySink) Name() string { return "pagerduty" }

// pdEvent is one Events API v2 event.
type pdEvent struct {
	RoutingKey  string     `json:"routing_key"`
	EventAction string     `json:"event_action"`
	DedupKey    string     `json:"dedup_key"`
	Payload     *pdPayload `json:"payload,omitempty"`
	Links       []pdLink   `json:"links,omitempty"`
	Client      string     `json:"client,omitempty"`
	ClientURL   string     `json:"client_url,omitempty"`
}

type pdPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

type pdLink struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// pdSummaryMax is the Events API's limit on payload.summary.
const pdSummaryMax = 1024

var errNoTrouble = errors.New("the alert names no trouble (trouble_id): nothing to trigger or resolve")

// Deliver implements Sink.
func (s PagerDutySink) Deliver(ctx context.Context, a *lifecycle.AlertPayload, _ []byte) error {
	if a.TroubleID == "" {
		return &PermanentError{Err: errNoTrouble}
	}
	if a.Type == lifecycle.AlertResolved {
		return s.send(ctx, s.event("resolve", a.TroubleID))
	}
	if a.PreviousTroubleID != "" && a.PreviousTroubleID != a.TroubleID {
		// Resolving an incident already resolved (a retry) is accepted.
		if err := s.send(ctx, s.event("resolve", a.PreviousTroubleID)); err != nil {
			return err
		}
	}
	return s.send(ctx, s.trigger(a))
}

func (s PagerDutySink) event(action, key string) pdEvent {
	return pdEvent{RoutingKey: s.RoutingKey, EventAction: action, DedupKey: key}
}

// trigger is a trouble's event.
func (s PagerDutySink) trigger(a *lifecycle.AlertPayload) pdEvent {
	ev := s.event("trigger", a.TroubleID)
	severity := "warning"
	if a.Severity == lifecycle.SeverityCritical {
		severity = "critical"
	}
	reason := ""
	if a.TroubleshootingReason != nil {
		reason = *a.TroubleshootingReason
	}
	ev.Payload = &pdPayload{
		Summary:       clean(headline(a), pdSummaryMax),
		Source:        clean(lockName(a), 255),
		Severity:      severity,
		Timestamp:     a.CreatedAt.UTC().Format(time.RFC3339),
		Component:     clean(codeName(a), 255),
		Group:         clean(a.WorkspaceID, 255),
		Class:         reason,
		CustomDetails: detailsJSON(a),
	}
	ev.Client = "codewatch"
	if u := codeURL(s.PublicURL, a.AccessCodeID); u != "" {
		ev.Links = []pdLink{{Href: u, Text: "Open in codewatch"}}
		ev.ClientURL = u
	}
	return ev
}

func (s PagerDutySink) send(ctx context.Context, ev pdEvent) error {
	url := s.URL
	if url == "" {
		url = PagerDutyURL
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return &PermanentError{Err: err}
	}
	return permanentIfRefused(post(ctx, s.Client, url, body, nil))
}
