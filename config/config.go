// Package config reads codewatch's settings from environment variables, each
// with an equal command-line flag (the flag wins). An invalid setting is one
// error naming the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/verify"
)

// Token is one ops credential: "name:token" or a bare token.
type Token struct {
	Name  string
	Value string
}

// Config is everything `codewatch serve` needs.
type Config struct {
	Listen string
	// ListenSet is true when CODEWATCH_LISTEN (or --listen) was given:
	// development mode otherwise binds the loopback interface only.
	ListenSet          bool
	OpsListen          string
	DatabaseURL        string
	MigrateDatabaseURL string
	WebhookSecrets     []string
	OpsTokens          []Token
	SweepInterval      time.Duration
	RemovalTimeout     time.Duration
	AlertRepeat        time.Duration
	AlertMaxAge        time.Duration
	AlertWebhookURL    string
	AlertWebhookSecret string
	SlackWebhookURL    string
	ShutdownTimeout    time.Duration
	ShutdownDrain      time.Duration
	Retention          time.Duration
	LogFormat          string
	LogLevel           string
	DBMaxConns         int
	IngestWorkers      int
	UnverifiedBudget   int64
	TrustedProxies     []*net.IPNet
	DataDir            string
	NoMigrate          bool
	// Seam's API; every feature that uses it is off without SeamAPIKey.
	SeamAPIKey                 string
	SeamAPIURL                 string
	SeamRPS                    float64
	SeamDeviceDeletesPerMinute int
	// SeamTimeout bounds one attempt of one call to Seam's API.
	SeamTimeout     time.Duration
	ReconcileAfter  time.Duration
	StartupBackfill time.Duration
	// PublicURL is where people reach the ops listener (the console), e.g.
	// https://codewatch-ops.example.com behind a TLS proxy; nil when unset.
	PublicURL *url.URL
	// SessionTTL is how long a console sign-in lasts.
	SessionTTL time.Duration
	// OnCall is the on-call sinks and the routing of every sink
	// (oncall.go).
	OnCall OnCall
	// DataKeys seal stored bodies (CODEWATCH_DATA_KEYS); nil when unset,
	// which only development mode accepts (it keeps a key of its own).
	DataKeys *datakeys.Keyring
	// SigningKey signs deletion records (CODEWATCH_SIGNING_KEY, id:base64
	// seed, comma-separated; package proof parses it); "" when unset.
	SigningKey string
}

// Var documents one setting; the README's table is made from the same facts.
type Var struct {
	// Flag is serve's flag for Env; empty for a variable serve does not
	// read (yet), listed for its Secret.
	Env, Flag, Default, Help string
	// Secret values are never printed: help shows "(set)" in their place.
	// Every command's flags defaulting to such a variable follow it (see
	// EnvString), so marking a variable here is all a new secret needs.
	Secret bool
}

// Vars lists every setting, and the secret variables no command reads yet.
var Vars = []Var{
	{"CODEWATCH_LISTEN", "listen", ":8080", "public listener: POST /webhooks/seam, GET /healthz", false},
	{"CODEWATCH_OPS_LISTEN", "ops-listen", "127.0.0.1:9090", "ops listener: /v1 status API, /healthz, /readyz, /metrics, status page", false},
	{"DATABASE_URL", "database-url", "", "Postgres URL; unset: start a local Postgres under CODEWATCH_DATA_DIR (development)", true},
	{"CODEWATCH_MIGRATE_DATABASE_URL", "migrate-database-url", "", "Postgres URL for migrations, which need a session (default: DATABASE_URL; set it to a direct URL when DATABASE_URL goes through PgBouncer)", true},
	{"SEAM_WEBHOOK_SECRET", "webhook-secret", "", "Svix endpoint secrets (whsec_...), comma-separated for rotation", true},
	{"CODEWATCH_OPS_TOKEN", "ops-token", "", "ops API bearer tokens, comma-separated, each token or name:token", true},
	{"CODEWATCH_SWEEP_INTERVAL", "sweep-interval", "30s", "how often the overdue sweeper runs", false},
	{"CODEWATCH_REMOVAL_TIMEOUT", "removal-timeout", "30m", "a deletion unconfirmed this long after it occurred is removal_overdue (0: never)", false},
	{"CODEWATCH_ALERT_REPEAT", "alert-repeat", "4h", "reminder interval for unresolved trouble (0: no reminders)", false},
	{"CODEWATCH_ALERT_MAX_AGE", "alert-max-age", "24h", "a failing alert delivery is retried with backoff this long after the alert, then given up (logged and counted)", false},
	{"CODEWATCH_ALERT_WEBHOOK_URL", "alert-webhook-url", "", "POST signed JSON alerts here", true},
	{"CODEWATCH_ALERT_WEBHOOK_SECRET", "alert-webhook-secret", "", "whsec_ secret that signs alert webhooks (required with the URL)", true},
	{"CODEWATCH_SLACK_WEBHOOK_URL", "slack-webhook-url", "", "Slack incoming-webhook URL for alerts", true},
	{"CODEWATCH_SHUTDOWN_TIMEOUT", "shutdown-timeout", "20s", "on SIGTERM, how long in-flight work may take to finish", false},
	{"CODEWATCH_SHUTDOWN_DRAIN", "shutdown-drain", "0", "on SIGTERM, keep serving this long with /readyz failing before closing the listeners (behind a load balancer)", false},
	{"CODEWATCH_RETENTION", "retention", "90d", "prune events and alerts of codes terminal for longer than this (0: keep all)", false},
	{"CODEWATCH_LOG_FORMAT", "log-format", "json", "json or text", false},
	{"CODEWATCH_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", false},
	{"CODEWATCH_DB_MAX_CONNS", "db-max-conns", "10", "Postgres connections per replica", false},
	{"CODEWATCH_INGEST_WORKERS", "ingest-workers", "1", "concurrent ingest transactions; concurrent webhooks share them (group commit)", false},
	{"CODEWATCH_UNVERIFIED_BUDGET", "unverified-budget", "32MiB", "memory for webhook bodies not yet verified, all requests together (past it: 503 with Retry-After)", false},
	{"CODEWATCH_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated CIDRs (or addresses) of proxies whose X-Forwarded-For is believed for logged client addresses; unset: the socket's address", false},
	{"CODEWATCH_DATA_KEYS", "data-keys", "", "keys that encrypt stored webhook bodies and key PIN hashes: id:base64key, comma-separated, the first encrypts (codewatch keys generate makes one); required with DATABASE_URL", true},
	{"CODEWATCH_DATA_DIR", "data-dir", ".codewatch", "where the development Postgres and secrets live", false},
	{"SEAM_API_KEY", "seam-api-key", "", "Seam API key: deletions, lookups and backfill use Seam's API (unset: all off)", true},
	{"SEAM_API_URL", "seam-api-url", "https://connect.getseam.com", "Seam's API", false},
	{"CODEWATCH_SEAM_RPS", "seam-rps", "5", "requests per second to Seam's API, all calls together", false},
	{"CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE", "seam-device-deletes-per-minute", "20", "deletions per lock per minute (Seam's limit)", false},
	{"CODEWATCH_SEAM_TIMEOUT", "seam-timeout", "10s", "how long one attempt of a call to Seam's API may take (an attempt that times out is retried, then recorded as a failed lookup)", false},
	{"CODEWATCH_RECONCILE_AFTER", "reconcile-after", "10m", "look an unconfirmed deletion up in Seam's API once its newest evidence is this old, then at doubling intervals up to 6h (0: never)", false},
	{"CODEWATCH_STARTUP_BACKFILL", "startup-backfill", "7d", "at start, read Seam's events from shortly before the newest webhook from Seam, at most this far back (0: off; at most 7d)", false},
	{"CODEWATCH_PUBLIC_URL", "public-url", "", "the URL people open the console at (the ops listener, e.g. behind a TLS proxy); https: console cookies are Secure; its forms also accept this Origin", false},
	{"CODEWATCH_SESSION_TTL", "session-ttl", "12h", "how long a console sign-in lasts", false},
	// On-call sinks and routing (oncall.go).
	{"CODEWATCH_PAGERDUTY_ROUTING_KEY", "pagerduty-routing-key", "", "PagerDuty Events API v2 integration key: alerts trigger and resolve incidents", true},
	{"CODEWATCH_PAGERDUTY_URL", "pagerduty-url", "https://events.pagerduty.com/v2/enqueue", "PagerDuty's Events API endpoint (a proxy's, or a test's)", false},
	{"CODEWATCH_OPSGENIE_API_KEY", "opsgenie-api-key", "", "Opsgenie API integration key: alerts create and close Opsgenie alerts", true},
	{"CODEWATCH_OPSGENIE_URL", "opsgenie-url", "https://api.opsgenie.com", "Opsgenie's API (EU: https://api.eu.opsgenie.com; a path prefix is kept, as Jira Service Management's operations API needs)", false},
	{"CODEWATCH_TEAMS_WEBHOOK_URL", "teams-webhook-url", "", "Microsoft Teams Workflows URL (\"when a webhook request is received\"): alerts as Adaptive Cards", true},
	{"CODEWATCH_WEBHOOK_MIN_SEVERITY", "webhook-min-severity", "warning", "least severity of trouble the alert webhook gets: info, warning or critical (resolutions follow their trouble)", false},
	{"CODEWATCH_WEBHOOK_WORKSPACES", "webhook-workspaces", "", "comma-separated Seam workspace ids whose alerts the alert webhook gets (unset: all)", false},
	{"CODEWATCH_SLACK_MIN_SEVERITY", "slack-min-severity", "warning", "least severity of trouble Slack gets", false},
	{"CODEWATCH_SLACK_WORKSPACES", "slack-workspaces", "", "workspaces whose alerts Slack gets (unset: all)", false},
	{"CODEWATCH_PAGERDUTY_MIN_SEVERITY", "pagerduty-min-severity", "warning", "least severity of trouble PagerDuty gets (critical: page only when the lock shows the code is still there)", false},
	{"CODEWATCH_PAGERDUTY_WORKSPACES", "pagerduty-workspaces", "", "workspaces whose alerts PagerDuty gets (unset: all)", false},
	{"CODEWATCH_OPSGENIE_MIN_SEVERITY", "opsgenie-min-severity", "warning", "least severity of trouble Opsgenie gets", false},
	{"CODEWATCH_OPSGENIE_WORKSPACES", "opsgenie-workspaces", "", "workspaces whose alerts Opsgenie gets (unset: all)", false},
	{"CODEWATCH_TEAMS_MIN_SEVERITY", "teams-min-severity", "warning", "least severity of trouble Teams gets", false},
	{"CODEWATCH_TEAMS_WORKSPACES", "teams-workspaces", "", "workspaces whose alerts Teams gets (unset: all)", false},
	{"CODEWATCH_SIGNING_KEY", "signing-key", "", "Ed25519 keys that sign deletion records (GET /v1/access_codes/{id}/proof): id:base64 32-byte seed, comma-separated, the first signs (codewatch keys generate --signing makes one); unset: the proof routes answer 501", true},
}

// Secret reports whether the variable env holds a secret (Var.Secret).
func Secret(env string) bool {
	for _, v := range Vars {
		if v.Env == env {
			return v.Secret
		}
	}
	return false
}

// EnvString defines a string flag whose default is the variable env, or def
// when env is unset. When env is Secret, help shows "(set)" for a default
// taken from it, never the value.
func EnvString(fs *flag.FlagSet, name, env, def, usage string, getenv func(string) string) *string {
	v := def
	if e := getenv(env); e != "" {
		v = e
	}
	if !Secret(env) {
		return fs.String(name, v, usage)
	}
	p := new(string)
	*p = v
	fs.Var(secretValue{p}, name, usage)
	return p
}

// secretValue is a string flag that prints as "(set)": flag's help takes
// a flag's default from String, once, when the flag is defined.
type secretValue struct{ p *string }

func (s secretValue) String() string {
	if s.p == nil || *s.p == "" {
		return ""
	}
	return "(set)"
}

func (s secretValue) Set(v string) error { *s.p = v; return nil }

// UsageError is a mistake on the command line (an unknown flag, a stray
// argument), as opposed to an invalid setting.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Load reads the settings from args (flags) and getenv. -h writes the usage
// to help and returns flag.ErrHelp; a command-line mistake is a *UsageError
// and prints nothing; an invalid setting is one error naming its variable.
func Load(args []string, getenv func(string) string, help io.Writer) (*Config, error) {
	fl, err := parseFlags(args, getenv, help)
	if err != nil {
		return nil, err
	}
	get := fl.get
	c := &Config{
		Listen:             get("CODEWATCH_LISTEN"),
		ListenSet:          fl.listenSet,
		OpsListen:          get("CODEWATCH_OPS_LISTEN"),
		DatabaseURL:        get("DATABASE_URL"),
		MigrateDatabaseURL: get("CODEWATCH_MIGRATE_DATABASE_URL"),
		AlertWebhookURL:    get("CODEWATCH_ALERT_WEBHOOK_URL"),
		AlertWebhookSecret: get("CODEWATCH_ALERT_WEBHOOK_SECRET"),
		SlackWebhookURL:    get("CODEWATCH_SLACK_WEBHOOK_URL"),
		LogFormat:          get("CODEWATCH_LOG_FORMAT"),
		LogLevel:           get("CODEWATCH_LOG_LEVEL"),
		DataDir:            get("CODEWATCH_DATA_DIR"),
		NoMigrate:          fl.noMigrate,
		SigningKey:         get("CODEWATCH_SIGNING_KEY"),
	}
	// Each concern in turn; the order is the order in which invalid
	// settings are reported (the first one is).
	r := &reader{get: get}
	// Whether serve may run without the webhook secrets and ops tokens is
	// Check's question.
	c.WebhookSecrets = parseSet(r, "SEAM_WEBHOOK_SECRET", verify.ParseSecrets)
	c.OpsTokens = parseSet(r, "CODEWATCH_OPS_TOKEN", ParseTokens)
	r.durations(c)
	r.capacity(c)
	r.logging(c)
	r.listeners(c)
	r.webURLs(c)
	r.database(c)
	c.TrustedProxies = parseSet(r, "CODEWATCH_TRUSTED_PROXIES", ParseCIDRs)
	r.seam(c)
	r.oncall(c)
	if len(r.errs) > 0 {
		return nil, r.errs[0]
	}
	return c, nil
}

// flags is serve's command line read over the environment.
type flags struct {
	// get returns a setting by its variable, trimmed: the flag's value,
	// else the variable's, else the default.
	get       func(env string) string
	listenSet bool
	noMigrate bool
}

// parseFlags defines a flag for each of Vars and parses args.
func parseFlags(args []string, getenv func(string) string, help io.Writer) (*flags, error) {
	fs := flag.NewFlagSet("codewatch serve", flag.ContinueOnError)
	// The flag package would print its error and the whole usage to stderr;
	// the caller prints one line instead.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := map[string]*string{}
	for _, v := range Vars {
		if v.Flag == "" {
			continue
		}
		vals[v.Env] = EnvString(fs, v.Flag, v.Env, v.Default, v.Help+" ($"+v.Env+")", getenv)
	}
	noMigrate := fs.Bool("no-migrate", false, "do not run migrations on start")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(help, "usage: codewatch serve [flags]\n\nRuns the webhook receiver and the ops API. Every flag has an environment\nvariable of the same meaning; the flag wins. Secret values show as (set).\n\nflags:")
			fs.SetOutput(help)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, &UsageError{err}
	}
	if fs.NArg() > 0 {
		return nil, &UsageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	listenSet := getenv("CODEWATCH_LISTEN") != ""
	fs.Visit(func(f *flag.Flag) { listenSet = listenSet || f.Name == "listen" })
	return &flags{
		get:       func(env string) string { return strings.TrimSpace(*vals[env]) },
		listenSet: listenSet,
		noMigrate: *noMigrate,
	}, nil
}

// reader reads settings into a Config, collecting one error per invalid
// setting.
type reader struct {
	get  func(env string) string
	errs []error
}

func (r *reader) bad(env string, err error) { r.errs = append(r.errs, fmt.Errorf("%s: %w", env, err)) }

// parseSet reads env with parse when it is set; nil (zero) when unset.
func parseSet[T any](r *reader, env string, parse func(string) (T, error)) T {
	var v T
	if s := r.get(env); s != "" {
		var err error
		if v, err = parse(s); err != nil {
			r.bad(env, err)
		}
	}
	return v
}

// webURL parses an http or https URL with a host.
func webURL(s string) (*url.URL, bool) {
	p, err := url.Parse(s)
	return p, err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != ""
}

func (r *reader) durations(c *Config) {
	for _, d := range []struct {
		env      string
		dst      *time.Duration
		zeroOK   bool
		positive bool
	}{
		{"CODEWATCH_SWEEP_INTERVAL", &c.SweepInterval, false, true},
		{"CODEWATCH_REMOVAL_TIMEOUT", &c.RemovalTimeout, true, true},
		{"CODEWATCH_ALERT_REPEAT", &c.AlertRepeat, true, true},
		{"CODEWATCH_ALERT_MAX_AGE", &c.AlertMaxAge, false, true},
		{"CODEWATCH_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, false, true},
		{"CODEWATCH_SHUTDOWN_DRAIN", &c.ShutdownDrain, true, true},
		{"CODEWATCH_RETENTION", &c.Retention, true, true},
		{"CODEWATCH_RECONCILE_AFTER", &c.ReconcileAfter, true, true},
		{"CODEWATCH_STARTUP_BACKFILL", &c.StartupBackfill, true, true},
		{"CODEWATCH_SESSION_TTL", &c.SessionTTL, false, true},
		{"CODEWATCH_SEAM_TIMEOUT", &c.SeamTimeout, false, true},
	} {
		v, err := ParseDuration(r.get(d.env))
		switch {
		case err != nil:
			r.bad(d.env, err)
		case v < 0 || (v == 0 && !d.zeroOK):
			r.bad(d.env, fmt.Errorf("must be more than 0, got %q", r.get(d.env)))
		}
		*d.dst = v
	}
}

// capacity reads the connections, ingest workers and memory serve may use.
func (r *reader) capacity(c *Config) {
	n, err := strconv.Atoi(r.get("CODEWATCH_DB_MAX_CONNS"))
	if err != nil || n < 2 || n > 1000 {
		r.bad("CODEWATCH_DB_MAX_CONNS", fmt.Errorf("must be an integer from 2 to 1000, got %q", r.get("CODEWATCH_DB_MAX_CONNS")))
	}
	c.DBMaxConns = n
	w, err := strconv.Atoi(r.get("CODEWATCH_INGEST_WORKERS"))
	if err != nil || w < 1 || w > 64 {
		r.bad("CODEWATCH_INGEST_WORKERS", fmt.Errorf("must be an integer from 1 to 64, got %q", r.get("CODEWATCH_INGEST_WORKERS")))
	} else if err == nil && n >= 2 && w > n-1 {
		r.bad("CODEWATCH_INGEST_WORKERS", fmt.Errorf("must leave a connection of CODEWATCH_DB_MAX_CONNS (%d) for the API and background work", n))
	}
	c.IngestWorkers = w
	if c.UnverifiedBudget, err = ParseSize(r.get("CODEWATCH_UNVERIFIED_BUDGET")); err != nil || c.UnverifiedBudget < 16<<20 {
		r.bad("CODEWATCH_UNVERIFIED_BUDGET", fmt.Errorf("must be a size of at least 16MiB (large bodies may use an eighth) like 32MiB, got %q", r.get("CODEWATCH_UNVERIFIED_BUDGET")))
	}
}

func (r *reader) logging(c *Config) {
	switch c.LogFormat {
	case "json", "text":
	default:
		r.bad("CODEWATCH_LOG_FORMAT", fmt.Errorf("must be json or text, got %q", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		r.bad("CODEWATCH_LOG_LEVEL", fmt.Errorf("must be debug, info, warn or error, got %q", c.LogLevel))
	}
}

func (r *reader) listeners(c *Config) {
	for _, l := range []struct{ env, v string }{{"CODEWATCH_LISTEN", c.Listen}, {"CODEWATCH_OPS_LISTEN", c.OpsListen}} {
		if !strings.Contains(l.v, ":") {
			r.bad(l.env, fmt.Errorf("must be host:port or :port, got %q", l.v))
		}
	}
}

// webURLs reads the URLs alerts go to and the one people reach the console
// at.
func (r *reader) webURLs(c *Config) {
	for _, u := range []struct{ env, v string }{{"CODEWATCH_ALERT_WEBHOOK_URL", c.AlertWebhookURL}, {"CODEWATCH_SLACK_WEBHOOK_URL", c.SlackWebhookURL}} {
		if u.v == "" {
			continue
		}
		if _, ok := webURL(u.v); !ok {
			r.bad(u.env, errors.New("must be an http or https URL"))
		}
	}
	if v := r.get("CODEWATCH_PUBLIC_URL"); v != "" {
		p, ok := webURL(v)
		if !ok || p.User != nil || (p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" {
			r.bad("CODEWATCH_PUBLIC_URL", fmt.Errorf("must be an http or https URL with no path, like https://codewatch-ops.example.com, got %q", v))
		} else {
			p.Path = ""
			c.PublicURL = p
		}
	}
	if c.AlertWebhookURL != "" {
		if _, err := verify.ParseSecrets(c.AlertWebhookSecret); err != nil || strings.Contains(c.AlertWebhookSecret, ",") {
			r.bad("CODEWATCH_ALERT_WEBHOOK_SECRET", errors.New("one whsec_ secret is required with CODEWATCH_ALERT_WEBHOOK_URL"))
		}
	}
}

// database checks the database URLs and reads the keys that seal what is
// stored.
func (r *reader) database(c *Config) {
	for _, u := range []struct{ env, v string }{{"DATABASE_URL", c.DatabaseURL}, {"CODEWATCH_MIGRATE_DATABASE_URL", c.MigrateDatabaseURL}} {
		if u.v == "" {
			continue
		}
		if _, err := url.Parse(u.v); err != nil || !strings.HasPrefix(u.v, "postgres") {
			r.bad(u.env, errors.New("must be a postgres:// URL"))
		}
	}
	if c.MigrateDatabaseURL != "" && c.DatabaseURL == "" {
		r.bad("CODEWATCH_MIGRATE_DATABASE_URL", errors.New("needs DATABASE_URL too (development mode uses its own Postgres)"))
	}
	c.DataKeys = parseSet(r, "CODEWATCH_DATA_KEYS", ParseDataKeys)
}

// seam reads the settings of Seam's API client.
func (r *reader) seam(c *Config) {
	var err error
	c.SeamAPIKey, c.SeamAPIURL = r.get("SEAM_API_KEY"), r.get("SEAM_API_URL")
	if _, ok := webURL(c.SeamAPIURL); !ok {
		r.bad("SEAM_API_URL", errors.New("must be an http or https URL"))
	}
	if c.SeamRPS, err = strconv.ParseFloat(r.get("CODEWATCH_SEAM_RPS"), 64); err != nil || c.SeamRPS <= 0 || c.SeamRPS > 1000 {
		r.bad("CODEWATCH_SEAM_RPS", fmt.Errorf("must be a number more than 0 and at most 1000, got %q", r.get("CODEWATCH_SEAM_RPS")))
	}
	if c.SeamDeviceDeletesPerMinute, err = strconv.Atoi(r.get("CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE")); err != nil ||
		c.SeamDeviceDeletesPerMinute < 1 || c.SeamDeviceDeletesPerMinute > 10000 {
		r.bad("CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE", fmt.Errorf("must be an integer from 1 to 10000, got %q", r.get("CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE")))
	}
	if c.StartupBackfill > 7*24*time.Hour {
		r.bad("CODEWATCH_STARTUP_BACKFILL", fmt.Errorf("must be at most 7d, got %q", r.get("CODEWATCH_STARTUP_BACKFILL")))
	}
}

// Development reports whether serve runs in development mode: without
// DATABASE_URL it starts a local Postgres and keeps secrets of its own.
func (c *Config) Development() bool { return c.DatabaseURL == "" }

// DevelopmentDefaults applies development mode's defaults: it answers this
// machine only, unless CODEWATCH_LISTEN (or --listen) says otherwise.
func (c *Config) DevelopmentDefaults() {
	if !c.ListenSet {
		c.Listen = "127.0.0.1" + c.Listen[strings.LastIndex(c.Listen, ":"):]
	}
}

// Check reports the first setting serve cannot run without. Development
// mode fills in its own before Check; in production they are required, and
// the webhook secrets must make a verifier.
func (c *Config) Check() error {
	if len(c.WebhookSecrets) == 0 {
		return errors.New("SEAM_WEBHOOK_SECRET: required (the whsec_... secret of your Seam webhook endpoint)")
	}
	if len(c.OpsTokens) == 0 {
		return errors.New("CODEWATCH_OPS_TOKEN: required (a bearer token of at least 16 characters for the ops API)")
	}
	if c.DataKeys == nil {
		return errors.New("CODEWATCH_DATA_KEYS: required with DATABASE_URL (id:base64key of 32 bytes, e.g. from 'codewatch keys generate'; it encrypts the stored webhook bodies)")
	}
	if _, err := verify.New(c.WebhookSecrets, nil); err != nil {
		return fmt.Errorf("SEAM_WEBHOOK_SECRET: %w", err)
	}
	return nil
}
