package main

import (
	"net/http"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/postgres"
)

// onCallSinks are the on-call sinks configured (issue 23): PagerDuty,
// Opsgenie and Teams, each when its key or URL is set.
func onCallSinks(cfg *config.Config, client *http.Client) []alert.Sink {
	o, public := cfg.OnCall, ""
	if cfg.PublicURL != nil {
		public = cfg.PublicURL.String()
	}
	var out []alert.Sink
	if o.PagerDutyRoutingKey != "" {
		out = append(out, alert.PagerDutySink{RoutingKey: o.PagerDutyRoutingKey, URL: o.PagerDutyURL, PublicURL: public, Client: client})
	}
	if o.OpsgenieAPIKey != "" {
		out = append(out, alert.OpsgenieSink{APIKey: o.OpsgenieAPIKey, URL: o.OpsgenieURL, PublicURL: public, Client: client})
	}
	if o.TeamsWebhookURL != "" {
		out = append(out, alert.TeamsSink{URL: o.TeamsWebhookURL, PublicURL: public, Client: client})
	}
	return out
}

// storeRoutes are the routes of the store's sinks, by name. The log sink
// has none: it records every alert.
func storeRoutes(cfg *config.Config) map[string]postgres.Route {
	out := map[string]postgres.Route{}
	for name, r := range cfg.OnCall.Routes {
		out[name] = postgres.Route{MinSeverity: r.MinSeverity, Workspaces: r.Workspaces}
	}
	return out
}
