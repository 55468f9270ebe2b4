package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// serve -h names every secret variable's flag and shows "(set)" for those
// that are set, never the value; other defaults show as they are.
func TestHelpHidesSecrets(t *testing.T) {
	env := map[string]string{"CODEWATCH_LISTEN": "127.0.0.1:18082"}
	for _, v := range Vars {
		if v.Secret {
			env[v.Env] = "marker-" + v.Env
		}
	}
	var help bytes.Buffer
	_, err := Load([]string{"-h"}, func(k string) string { return env[k] }, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load -h: %v", err)
	}
	out := help.String()
	if strings.Contains(out, "marker-") {
		t.Fatalf("help shows a secret:\n%s", out)
	}
	if !strings.Contains(out, `(default "127.0.0.1:18082")`) {
		t.Errorf("help hides a setting that is no secret:\n%s", out)
	}
	// 9, and the on-call sinks' key and URLs (PagerDuty, Opsgenie, Teams), and the signing key.
	if n := strings.Count(out, "(default (set))"); n != 13 {
		t.Errorf("%d flags say (set), want the 13 secret ones:\n%s", n, out)
	}
	// Variables without a flag are listed for their secrecy only.
	for _, v := range Vars {
		if v.Flag == "" && strings.Contains(out, v.Env) {
			t.Errorf("%s has no flag but help lists it", v.Env)
		}
	}
}

func TestSecret(t *testing.T) {
	for env, want := range map[string]bool{
		"DATABASE_URL": true, "CODEWATCH_MIGRATE_DATABASE_URL": true, "SEAM_WEBHOOK_SECRET": true,
		"CODEWATCH_OPS_TOKEN": true, "CODEWATCH_ALERT_WEBHOOK_SECRET": true, "CODEWATCH_ALERT_WEBHOOK_URL": true,
		"CODEWATCH_SLACK_WEBHOOK_URL": true, "SEAM_API_KEY": true, "CODEWATCH_DATA_KEYS": true,
		"CODEWATCH_SIGNING_KEY":           true,
		"CODEWATCH_PAGERDUTY_ROUTING_KEY": true, "CODEWATCH_OPSGENIE_API_KEY": true, "CODEWATCH_TEAMS_WEBHOOK_URL": true,
		"CODEWATCH_PAGERDUTY_URL": false, "CODEWATCH_OPSGENIE_URL": false, "CODEWATCH_PAGERDUTY_MIN_SEVERITY": false,
		"CODEWATCH_LISTEN": false, "CODEWATCH_DATA_DIR": false, "CODEWATCH_SEND_URL": false, "UNLISTED": false,
	} {
		if got := Secret(env); got != want {
			t.Errorf("Secret(%s) = %v, want %v", env, got, want)
		}
	}
}

// EnvString reads the variable, keeps its value for the program and shows
// it in help only when it is no secret.
func TestEnvString(t *testing.T) {
	env := map[string]string{"SEAM_API_KEY": "sk_live_marker", "CODEWATCH_DATA_DIR": "/srv/cw"}
	getenv := func(k string) string { return env[k] }
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	key := EnvString(fs, "api-key", "SEAM_API_KEY", "", "Seam API key", getenv)
	dir := EnvString(fs, "data-dir", "CODEWATCH_DATA_DIR", ".codewatch", "data", getenv)
	unset := EnvString(fs, "other-key", "CODEWATCH_DATA_KEYS", "", "keys", getenv)
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if *key != "sk_live_marker" || *dir != "/srv/cw" || *unset != "" {
		t.Fatalf("values %q %q %q", *key, *dir, *unset)
	}
	out := help.String()
	if strings.Contains(out, "sk_live_marker") || !strings.Contains(out, "(default (set))") || !strings.Contains(out, `"/srv/cw"`) {
		t.Errorf("help:\n%s", out)
	}
	if strings.Count(out, "(set)") != 1 {
		t.Errorf("an unset secret says (set):\n%s", out)
	}
	if err := fs.Parse([]string{"-api-key", "sk_other"}); err != nil || *key != "sk_other" {
		t.Errorf("the flag does not replace the variable: %v %q", err, *key)
	}
}

// A command-line mistake is a UsageError, distinct from an invalid setting,
// and Load prints nothing for either.
func TestLoadErrors(t *testing.T) {
	var help bytes.Buffer
	getenv := func(string) string { return "" }
	for _, args := range [][]string{{"--no-such-flag"}, {"extra"}, {"--no-migrate=maybe"}} {
		_, err := Load(args, getenv, &help)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("Load %v: %v, want a UsageError", args, err)
		}
	}
	_, err := Load([]string{"--log-format", "xml"}, getenv, &help)
	var ue *UsageError
	if err == nil || errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "CODEWATCH_LOG_FORMAT") {
		t.Errorf("an invalid setting: %v", err)
	}
	if help.Len() != 0 {
		t.Errorf("Load printed %q", help.String())
	}
}

// Load reports the first invalid setting, in a fixed order: each case below
// is invalid together with every case after it, and must be the one named.
func TestLoadReportsTheFirstInvalidSetting(t *testing.T) {
	type setting struct {
		env   string
		value string
		// with are valid settings the invalid one needs to be checked.
		with map[string]string
	}
	order := []setting{
		{env: "SEAM_WEBHOOK_SECRET", value: "notwhsec"},
		{env: "CODEWATCH_OPS_TOKEN", value: "short"},
		{env: "CODEWATCH_SWEEP_INTERVAL", value: "0"},
		{env: "CODEWATCH_SEAM_TIMEOUT", value: "soon"},
		{env: "CODEWATCH_DB_MAX_CONNS", value: "1"},
		{env: "CODEWATCH_INGEST_WORKERS", value: "0"},
		{env: "CODEWATCH_UNVERIFIED_BUDGET", value: "1MiB"},
		{env: "CODEWATCH_LOG_FORMAT", value: "xml"},
		{env: "CODEWATCH_LOG_LEVEL", value: "loud"},
		{env: "CODEWATCH_LISTEN", value: "localhost"},
		{env: "CODEWATCH_OPS_LISTEN", value: "localhost"},
		{env: "CODEWATCH_ALERT_WEBHOOK_URL", value: "ftp://alerts.example.com/x", with: map[string]string{"CODEWATCH_ALERT_WEBHOOK_SECRET": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"}},
		{env: "CODEWATCH_SLACK_WEBHOOK_URL", value: "ftp://hooks.example.com/x"},
		{env: "CODEWATCH_PUBLIC_URL", value: "ops.example.com"},
		{env: "CODEWATCH_ALERT_WEBHOOK_SECRET", value: "notwhsec", with: map[string]string{"CODEWATCH_ALERT_WEBHOOK_URL": "https://alerts.example.com/x"}},
		{env: "DATABASE_URL", value: "mysql://db/codewatch"},
		{env: "CODEWATCH_MIGRATE_DATABASE_URL", value: "mysql://db/codewatch"},
		{env: "CODEWATCH_DATA_KEYS", value: "nokey"},
		{env: "CODEWATCH_TRUSTED_PROXIES", value: "nonsense"},
		{env: "SEAM_API_URL", value: "ftp://seam.example.com"},
		{env: "CODEWATCH_SEAM_RPS", value: "0"},
		{env: "CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE", value: "0"},
		{env: "CODEWATCH_STARTUP_BACKFILL", value: "8d"},
		{env: "CODEWATCH_PAGERDUTY_URL", value: "ftp://events.example.com/v2/enqueue"},
		{env: "CODEWATCH_OPSGENIE_URL", value: "api.opsgenie.com"},
		{env: "CODEWATCH_TEAMS_WEBHOOK_URL", value: "https://user:pw@flows.example.com/x"},
		{env: "CODEWATCH_WEBHOOK_MIN_SEVERITY", value: "loud"},
		{env: "CODEWATCH_WEBHOOK_WORKSPACES", value: ","},
		{env: "CODEWATCH_PAGERDUTY_MIN_SEVERITY", value: "error"},
		{env: "CODEWATCH_TEAMS_WORKSPACES", value: "a b"},
	}
	for i, first := range order {
		env := map[string]string{}
		for _, s := range order[i:] {
			for k, v := range s.with {
				if _, set := env[k]; !set {
					env[k] = v
				}
			}
		}
		for _, s := range order[i:] {
			env[s.env] = s.value
		}
		_, err := Load(nil, func(k string) string { return env[k] }, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), first.env+":") {
			t.Errorf("with %s and every later setting invalid: %v, want an error naming %s", first.env, err, first.env)
		}
	}
}

func TestCheck(t *testing.T) {
	key, err := ParseDataKeys("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	valid := func() *Config {
		return &Config{
			WebhookSecrets: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("a webhook secret of 24 b"))},
			OpsTokens:      []Token{{Name: "alice", Value: "0123456789abcdef0123"}},
			DataKeys:       key,
		}
	}
	if err := valid().Check(); err != nil {
		t.Fatalf("a complete configuration: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no webhook secret", func(c *Config) { c.WebhookSecrets = nil },
			"SEAM_WEBHOOK_SECRET: required (the whsec_... secret of your Seam webhook endpoint)"},
		{"no ops token", func(c *Config) { c.OpsTokens = nil },
			"CODEWATCH_OPS_TOKEN: required (a bearer token of at least 16 characters for the ops API)"},
		{"no data keys", func(c *Config) { c.DataKeys = nil },
			"CODEWATCH_DATA_KEYS: required with DATABASE_URL (id:base64key of 32 bytes, e.g. from 'codewatch keys generate'; it encrypts the stored webhook bodies)"},
		{"webhook secret that makes no verifier", func(c *Config) { c.WebhookSecrets = []string{"whsec_%%%notbase64"} },
			"SEAM_WEBHOOK_SECRET: secret 1: not valid base64"},
		// The first missing setting is named.
		{"nothing", func(c *Config) { *c = Config{} }, "SEAM_WEBHOOK_SECRET: required"},
	} {
		c := valid()
		tc.change(c)
		err := c.Check()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "%%%notbase64") {
			t.Errorf("%s: the secret is echoed back: %v", tc.name, err)
		}
	}
}

func TestDevelopment(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		dev  bool
		// listen is CODEWATCH_LISTEN after DevelopmentDefaults in
		// development.
		listen string
	}{
		{env: map[string]string{}, dev: true, listen: "127.0.0.1:8080"},
		{env: map[string]string{"CODEWATCH_LISTEN": ":18080"}, dev: true, listen: ":18080"},
		{env: map[string]string{"CODEWATCH_LISTEN": "0.0.0.0:8080"}, dev: true, listen: "0.0.0.0:8080"},
		{args: []string{"--listen", ":8080"}, dev: true, listen: ":8080"},
		{env: map[string]string{"DATABASE_URL": "postgres://db/codewatch"}, dev: false, listen: ":8080"},
	} {
		c, err := Load(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.env, tc.args, err)
		}
		if c.Development() != tc.dev {
			t.Errorf("%v %v: Development() = %v", tc.env, tc.args, c.Development())
		}
		if c.Development() {
			c.DevelopmentDefaults()
		}
		if c.Listen != tc.listen {
			t.Errorf("%v %v: listen %q after DevelopmentDefaults, want %q", tc.env, tc.args, c.Listen, tc.listen)
		}
	}
}

// The on-call settings: sinks are off until their key or URL is set, every
// routed sink defaults to warning and all workspaces, and a route is read
// per sink.
func TestOnCallRoutes(t *testing.T) {
	env := map[string]string{
		"CODEWATCH_PAGERDUTY_ROUTING_KEY":  "R0UT1NGK3Y0123456789abcdefABCDEF",
		"CODEWATCH_PAGERDUTY_MIN_SEVERITY": "critical",
		"CODEWATCH_SLACK_WORKSPACES":       " ws_a, ws_b ",
		"CODEWATCH_OPSGENIE_URL":           "https://api.eu.opsgenie.com/jsm/ops/integration",
	}
	c, err := Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.OnCall
	if o.PagerDutyRoutingKey != env["CODEWATCH_PAGERDUTY_ROUTING_KEY"] || o.PagerDutyURL != "https://events.pagerduty.com/v2/enqueue" ||
		o.OpsgenieAPIKey != "" || o.OpsgenieURL != env["CODEWATCH_OPSGENIE_URL"] || o.TeamsWebhookURL != "" {
		t.Errorf("sinks: %+v", o)
	}
	if r := o.Routes["pagerduty"]; r.MinSeverity != "critical" || r.Workspaces != nil {
		t.Errorf("pagerduty route %+v", r)
	}
	if r := o.Routes["slack"]; r.MinSeverity != "warning" || strings.Join(r.Workspaces, "|") != "ws_a|ws_b" {
		t.Errorf("slack route %+v", r)
	}
	for _, sink := range RoutedSinks {
		if _, ok := o.Routes[sink]; !ok {
			t.Errorf("no route for %s", sink)
		}
	}
}
