package alert

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/codewatch/codewatch/lifecycle"
)

// OpsgenieURL is Opsgenie's API (EU accounts: https://api.eu.opsgenie.com).
const OpsgenieURL = "https://api.opsgenie.com"

// OpsgenieSink sends alerts to Opsgenie's Alert API (or Jira Service
// Management's operations API, which takes the same requests under a path
// prefix: URL may end in a path, which requests keep). A trouble creates an
// alert whose alias is the trouble (trouble_id: Opsgenie folds reminders
// into the open alert), a resolution closes it by alias; a trouble that
// replaces another closes the other first. Answers are asynchronous: 202 is
// success; 400, 413 and 422 are given up at once, logged; 429 and 5xx are
// retried with backoff.
type OpsgenieSink struct {
	// APIKey is an API integration's key (opaque), sent as
	// "Authorization: GenieKey <key>".
	APIKey string
	// URL is the API's base (OpsgenieURL when empty).
	URL string
	// PublicURL is CODEWATCH_PUBLIC_URL, for the code's console page.
	PublicURL string
	Client    *http.Client
}

// Name implements Sink.
func (OpsgenieSink) Name() string { return "opsgenie" }

// Opsgenie's limits on an alert's fields.
const (
	ogMessageMax     = 130
	ogDescriptionMax = 15000
	ogDetailMax      = 8000
)

// ogAlert is the body of POST /v2/alerts.
type ogAlert struct {
	Message     string            `json:"message"`
	Alias       string            `json:"alias"`
	Description string            `json:"description"`
	Priority    string            `json:"priority"`
	Details     map[string]string `json:"details"`
	Tags        []string          `json:"tags"`
	Source      string            `json:"source"`
	Entity      string            `json:"entity"`
}

// ogClose is the body of POST /v2/alerts/{alias}/close.
type ogClose struct {
	Source string `json:"source"`
	User   string `json:"user"`
	Note   string `json:"note"`
}

// Deliver implements Sink.
func (s OpsgenieSink) Deliver(ctx context.Context, a *lifecycle.AlertPayload, _ []byte) error {
	if a.TroubleID == "" {
		return &PermanentError{Err: errNoTrouble}
	}
	if a.Type == lifecycle.AlertResolved {
		return s.close(ctx, a.TroubleID, clean(headline(a), ogDescriptionMax))
	}
	if a.PreviousTroubleID != "" && a.PreviousTroubleID != a.TroubleID {
		if err := s.close(ctx, a.PreviousTroubleID, "Replaced by "+a.TroubleID+": "+clean(headline(a), ogDescriptionMax)); err != nil {
			return err
		}
	}
	return s.create(ctx, a)
}

func (s OpsgenieSink) create(ctx context.Context, a *lifecycle.AlertPayload) error {
	priority := "P3"
	if a.Severity == lifecycle.SeverityCritical {
		priority = "P1"
	}
	details := map[string]string{}
	var desc strings.Builder
	desc.WriteString(headline(a))
	desc.WriteString("\n")
	for _, f := range facts(a) {
		details[f.key] = clean(f.value, ogDetailMax)
		desc.WriteString("\n" + f.title + ": " + f.value)
	}
	if u := codeURL(s.PublicURL, a.AccessCodeID); u != "" {
		details["codewatch_url"] = u
		desc.WriteString("\n\nOpen in codewatch: " + u)
	}
	tags := []string{"codewatch", a.Severity}
	if a.TroubleshootingReason != nil {
		tags = append(tags, *a.TroubleshootingReason)
	}
	body, err := json.Marshal(ogAlert{
		Message:     clean(headline(a), ogMessageMax),
		Alias:       a.TroubleID,
		Description: clean(desc.String(), ogDescriptionMax),
		Priority:    priority,
		Details:     details,
		Tags:        tags,
		Source:      "codewatch",
		Entity:      clean(lockName(a), 512),
	})
	if err != nil {
		return &PermanentError{Err: err}
	}
	return s.post(ctx, "/v2/alerts", body)
}

func (s OpsgenieSink) close(ctx context.Context, alias, note string) error {
	body, err := json.Marshal(ogClose{Source: "codewatch", User: "codewatch", Note: note})
	if err != nil {
		return &PermanentError{Err: err}
	}
	return s.post(ctx, "/v2/alerts/"+url.PathEscape(alias)+"/close?identifierType=alias", body)
}

// post sends to path under the base URL, which keeps its own path (Jira
// Service Management's prefix).
func (s OpsgenieSink) post(ctx context.Context, path string, body []byte) error {
	base := s.URL
	if base == "" {
		base = OpsgenieURL
	}
	h := http.Header{}
	h.Set("Authorization", "GenieKey "+s.APIKey)
	return permanentIfRefused(post(ctx, s.Client, strings.TrimRight(base, "/")+path, body, h))
}
