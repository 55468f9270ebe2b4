package main

// The Grafana dashboard (deploy/grafana/codewatch.json, issue 24) charts
// what the service really exports: every query names a metric that a
// freshly started service's /metrics serves, every label it selects a value
// of (label="v", label=~"a|b") is a series there already at zero, and every
// label it groups by is one of the metric's labels.

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/codewatch/codewatch/internal/pgtest"
)

const dashboardFile = "../../deploy/grafana/codewatch.json"

// dashboardQueries returns every panel's PromQL, by panel title.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID, Title string
		Inputs     []struct{ Name, PluginID string } `json:"__inputs"`
		Panels     []struct {
			Title, Type string
			Targets     []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	// Importable: a uid, a title, and the Prometheus data source asked for
	// on import.
	if d.UID == "" || d.Title == "" || len(d.Inputs) != 1 || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("the dashboard is not importable as it is: uid %q title %q inputs %+v", d.UID, d.Title, d.Inputs)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

var (
	promSelector = regexp.MustCompile(`\b(codewatch_[a-z0-9_]+)(\{[^}]*\})?`)
	promMatcher  = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	promBy       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	plainAlts    = regexp.MustCompile(`^[a-z0-9_.]+(\|[a-z0-9_.]+)*$`)
)

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	queries := dashboardQueries(t)
	if len(queries) < 10 {
		t.Fatalf("%d panels with queries", len(queries))
	}
	// A service that has seen nothing yet.
	env := newServeEnv(t, pgtest.NewURL(t))
	env["CODEWATCH_ALERT_WEBHOOK_URL"] = "http://127.0.0.1:9/alerts"
	env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = newWebhookSecret()
	s := startServer(t, "serve", env)
	resp, err := http.Get(s.Ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// series are the label sets served under each name a query can use (a
	// histogram's _bucket, _sum and _count included).
	series := map[string][]map[string]string{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if f.GetType() == dto.MetricType_HISTOGRAM {
				series[name+"_sum"] = append(series[name+"_sum"], labels)
				series[name+"_count"] = append(series[name+"_count"], labels)
				bucket := map[string]string{"le": "+Inf"}
				for k, v := range labels {
					bucket[k] = v
				}
				series[name+"_bucket"] = append(series[name+"_bucket"], bucket)
				continue
			}
			series[name] = append(series[name], labels)
		}
	}
	has := func(name, label, value string) bool {
		for _, ls := range series[name] {
			if v, ok := ls[label]; ok && (value == "" || v == value) {
				return true
			}
		}
		return false
	}
	checked := 0
	for title, exprs := range queries {
		for _, expr := range exprs {
			sels := promSelector.FindAllStringSubmatch(expr, -1)
			if len(sels) == 0 {
				t.Errorf("panel %q: %q names no codewatch metric", title, expr)
			}
			var names []string
			for _, sel := range sels {
				name := sel[1]
				names = append(names, name)
				if len(series[name]) == 0 {
					t.Errorf("panel %q: %s is not served by /metrics", title, name)
					continue
				}
				checked++
				for _, m := range promMatcher.FindAllStringSubmatch(sel[2], -1) {
					label, op, value := m[1], m[2], m[3]
					switch {
					case op == "=":
						if !has(name, label, value) {
							t.Errorf("panel %q: no series %s{%s=%q} at start-up", title, name, label, value)
						}
					case op == "=~" && plainAlts.MatchString(value):
						for _, v := range strings.Split(value, "|") {
							if !has(name, label, v) {
								t.Errorf("panel %q: no series %s{%s=%q} at start-up", title, name, label, v)
							}
						}
					default:
						if !has(name, label, "") {
							t.Errorf("panel %q: %s has no label %s", title, name, label)
						}
					}
				}
			}
			for _, by := range promBy.FindAllStringSubmatch(expr, -1) {
				for _, label := range strings.Split(by[1], ",") {
					label = strings.TrimSpace(label)
					found := false
					for _, name := range names {
						found = found || has(name, label, "")
					}
					if label != "" && !found {
						t.Errorf("panel %q: grouped by %s, a label of none of %v", title, label, names)
					}
				}
			}
		}
	}
	t.Logf("%d panels, %d metric references checked against /metrics", len(queries), checked)
}
