package alert

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/codewatch/codewatch/lifecycle"
)

// TeamsSink posts alerts to a Microsoft Teams channel through a Workflows
// flow "Post to a channel when a webhook request is received" (Office 365
// connectors are retired): a message with one Adaptive Card (version 1.4),
// critical trouble in the attention colour, the code's facts, and an "Open
// in codewatch" action when CODEWATCH_PUBLIC_URL is set. The URL is the
// flow's (its host is Microsoft's to choose, its query a signature: a
// secret, never logged). 200 and 202 are success; 400, 413 and 422 are
// given up at once; the rest is retried with backoff.
type TeamsSink struct {
	URL       string
	PublicURL string
	Client    *http.Client
}

// Name implements Sink.
func (TeamsSink) Name() string { return "teams" }

// TeamsMessage is one card: a title in a style, text, facts and a link.
// Alerts become one (Deliver); so can other messages to the same channel
// (a digest), through Post.
type TeamsMessage struct {
	Title string
	// Style is "attention" (critical), "warning", "good" (resolved) or
	// "default".
	Style string
	Text  string
	Facts [][2]string // title, value
	// Link, when set, is the "Open in codewatch" action's URL.
	Link string
}

// Deliver implements Sink.
func (s TeamsSink) Deliver(ctx context.Context, a *lifecycle.AlertPayload, _ []byte) error {
	m := TeamsMessage{Title: headline(a), Style: "warning", Text: a.Message, Link: codeURL(s.PublicURL, a.AccessCodeID)}
	switch {
	case a.Type == lifecycle.AlertResolved:
		m.Style = "good"
	case a.Severity == lifecycle.SeverityCritical:
		m.Style = "attention"
	}
	for _, f := range facts(a) {
		m.Facts = append(m.Facts, [2]string{f.title, f.value})
	}
	return s.Post(ctx, m)
}

// Post sends m to the channel.
func (s TeamsSink) Post(ctx context.Context, m TeamsMessage) error {
	color := map[string]string{"attention": "Attention", "warning": "Warning", "good": "Good"}[m.Style]
	if color == "" {
		color = "Default"
	}
	title := map[string]any{"type": "TextBlock", "text": clean(m.Title, 2048), "weight": "Bolder", "size": "Medium",
		"wrap": true, "color": color}
	body := []any{map[string]any{"type": "Container", "style": orDefault(m.Style), "bleed": true, "items": []any{title}}}
	if m.Text != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": clean(m.Text, 4096), "wrap": true})
	}
	if len(m.Facts) > 0 {
		facts := make([]any, 0, len(m.Facts))
		for _, f := range m.Facts {
			facts = append(facts, map[string]any{"title": clean(f[0], 256), "value": clean(f[1], 2048)})
		}
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
		"msteams": map[string]any{"width": "Full"},
	}
	if m.Link != "" {
		card["actions"] = []any{map[string]any{"type": "Action.OpenUrl", "title": "Open in codewatch", "url": m.Link}}
	}
	msg, err := json.Marshal(map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	})
	if err != nil {
		return &PermanentError{Err: err}
	}
	return permanentIfRefused(post(ctx, s.Client, s.URL, msg, nil))
}

// orDefault is a container style Adaptive Cards 1.4 knows.
func orDefault(style string) string {
	switch style {
	case "attention", "warning", "good":
		return style
	}
	return "default"
}
