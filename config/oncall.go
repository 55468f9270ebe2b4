package config

import (
	"errors"
	"fmt"
	"strings"
)

// OnCall is the on-call sinks' settings (issue 23) and the routing of every
// sink.
type OnCall struct {
	// PagerDuty's Events API v2: the integration's routing key (opaque;
	// unset: no PagerDuty sink) and the endpoint.
	PagerDutyRoutingKey, PagerDutyURL string
	// Opsgenie's Alert API: an API integration's key (unset: no Opsgenie
	// sink) and the base URL, which may end in a path.
	OpsgenieAPIKey, OpsgenieURL string
	// TeamsWebhookURL is a Workflows webhook URL (unset: no Teams sink).
	TeamsWebhookURL string
	// Routes are, by sink name (webhook, slack, pagerduty, opsgenie,
	// teams), the alerts each takes. The log sink takes every alert.
	Routes map[string]Route
}

// Route is which trouble alerts a sink takes; resolutions go wherever
// their trouble went.
type Route struct {
	// MinSeverity is info, warning or critical.
	MinSeverity string
	// Workspaces, when set, are the only Seam workspaces taken.
	Workspaces []string
}

// RoutedSinks are the sinks CODEWATCH_<SINK>_MIN_SEVERITY and
// CODEWATCH_<SINK>_WORKSPACES route, by sink name.
var RoutedSinks = []string{"webhook", "slack", "pagerduty", "opsgenie", "teams"}

// oncall reads the on-call settings.
func (r *reader) oncall(c *Config) {
	o := &c.OnCall
	o.PagerDutyRoutingKey, o.PagerDutyURL = r.get("CODEWATCH_PAGERDUTY_ROUTING_KEY"), r.get("CODEWATCH_PAGERDUTY_URL")
	o.OpsgenieAPIKey, o.OpsgenieURL = r.get("CODEWATCH_OPSGENIE_API_KEY"), r.get("CODEWATCH_OPSGENIE_URL")
	o.TeamsWebhookURL = r.get("CODEWATCH_TEAMS_WEBHOOK_URL")
	for _, u := range []struct{ env, v string }{{"CODEWATCH_PAGERDUTY_URL", o.PagerDutyURL},
		{"CODEWATCH_OPSGENIE_URL", o.OpsgenieURL}, {"CODEWATCH_TEAMS_WEBHOOK_URL", o.TeamsWebhookURL}} {
		if u.v == "" {
			continue
		}
		if p, ok := webURL(u.v); !ok || p.User != nil {
			r.bad(u.env, errors.New("must be an http or https URL"))
		}
	}
	o.Routes = map[string]Route{}
	for _, sink := range RoutedSinks {
		env := "CODEWATCH_" + strings.ToUpper(sink) + "_"
		rt := Route{MinSeverity: r.get(env + "MIN_SEVERITY")}
		switch rt.MinSeverity {
		case "info", "warning", "critical":
		default:
			r.bad(env+"MIN_SEVERITY", fmt.Errorf("must be info, warning or critical, got %q", rt.MinSeverity))
		}
		if ws, err := ParseWorkspaces(r.get(env + "WORKSPACES")); err != nil {
			r.bad(env+"WORKSPACES", err)
		} else {
			rt.Workspaces = ws
		}
		o.Routes[sink] = rt
	}
}

// ParseWorkspaces reads "ws1, ws2": Seam workspace ids, comma-separated;
// "" is nil (every workspace).
func ParseWorkspaces(list string) ([]string, error) {
	var out []string
	for _, w := range strings.Split(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if len(w) > 255 || strings.ContainsAny(w, " \t\n\"'") {
			return nil, fmt.Errorf("%q is not a workspace id", w)
		}
		out = append(out, w)
	}
	if list != "" && len(out) == 0 {
		return nil, errors.New("no workspace id given")
	}
	return out, nil
}
