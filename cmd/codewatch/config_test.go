package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
)

// configBase is a valid serve environment whose database is never reached:
// every case below must stop before connecting.
func configBase(t *testing.T) map[string]string {
	return map[string]string{
		"DATABASE_URL":         "postgres://codewatch@127.0.0.1:1/unreachable?sslmode=disable",
		"CODEWATCH_DATA_KEYS":  newDataKey(t, "k1"),
		"SEAM_WEBHOOK_SECRET":  newWebhookSecret(),
		"CODEWATCH_OPS_TOKEN":  "alice:0123456789abcdef0123",
		"CODEWATCH_LISTEN":     "127.0.0.1:0",
		"CODEWATCH_OPS_LISTEN": "127.0.0.1:0",
		"CODEWATCH_LOG_FORMAT": "json",
		"CODEWATCH_DATA_DIR":   t.TempDir(),
	}
}

// runServeInProcess runs `serve args...` through run with exactly env. A
// configuration error returns at once; the timeout only guards a regression
// where start-up would go on to wait for the (unreachable) database.
func runServeInProcess(t *testing.T, env map[string]string, args ...string) (error, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"serve"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	return err, stdout.String(), stderr.String()
}

func TestConfigErrorsStopStartup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		set   map[string]string
		unset []string
		args  []string
		// want are substrings of the one error line; the first is the
		// variable it must name.
		want []string
		// secret must not be echoed back.
		secret string
	}{
		{name: "webhook secret without whsec_", set: map[string]string{"SEAM_WEBHOOK_SECRET": "notwhsec"},
			want: []string{"SEAM_WEBHOOK_SECRET", "whsec_"}, secret: "notwhsec"},
		{name: "webhook secret not base64", set: map[string]string{"SEAM_WEBHOOK_SECRET": "whsec_%%%notbase64"},
			want: []string{"SEAM_WEBHOOK_SECRET", "base64"}, secret: "%%%notbase64"},
		{name: "webhook secret missing", unset: []string{"SEAM_WEBHOOK_SECRET"},
			want: []string{"SEAM_WEBHOOK_SECRET", "whsec_"}},
		{name: "removal timeout not a duration", set: map[string]string{"CODEWATCH_REMOVAL_TIMEOUT": "abc"},
			want: []string{"CODEWATCH_REMOVAL_TIMEOUT", `"abc"`}},
		{name: "negative removal timeout", set: map[string]string{"CODEWATCH_REMOVAL_TIMEOUT": "-5m"},
			want: []string{"CODEWATCH_REMOVAL_TIMEOUT"}},
		{name: "zero sweep interval", set: map[string]string{"CODEWATCH_SWEEP_INTERVAL": "0"},
			want: []string{"CODEWATCH_SWEEP_INTERVAL"}},
		{name: "ops token too short", set: map[string]string{"CODEWATCH_OPS_TOKEN": "short"},
			want: []string{"CODEWATCH_OPS_TOKEN", "16"}, secret: "short"},
		{name: "named ops token too short", set: map[string]string{"CODEWATCH_OPS_TOKEN": "bob:tooshort"},
			want: []string{"CODEWATCH_OPS_TOKEN", "16"}, secret: "tooshort"},
		{name: "log format xml", set: map[string]string{"CODEWATCH_LOG_FORMAT": "xml"},
			want: []string{"CODEWATCH_LOG_FORMAT", "xml"}},
		{name: "log level", set: map[string]string{"CODEWATCH_LOG_LEVEL": "loud"},
			want: []string{"CODEWATCH_LOG_LEVEL"}},
		{name: "alert webhook without secret", set: map[string]string{"CODEWATCH_ALERT_WEBHOOK_URL": "https://alerts.example.com/codewatch"},
			want: []string{"CODEWATCH_ALERT_WEBHOOK_SECRET", "CODEWATCH_ALERT_WEBHOOK_URL"}},
		{name: "alert webhook URL not http", set: map[string]string{"CODEWATCH_ALERT_WEBHOOK_URL": "ftp://alerts.example.com/x",
			"CODEWATCH_ALERT_WEBHOOK_SECRET": newWebhookSecret()},
			want: []string{"CODEWATCH_ALERT_WEBHOOK_URL"}},
		{name: "listen without port", set: map[string]string{"CODEWATCH_LISTEN": "localhost"},
			want: []string{"CODEWATCH_LISTEN"}},
		{name: "db max conns", set: map[string]string{"CODEWATCH_DB_MAX_CONNS": "1"},
			want: []string{"CODEWATCH_DB_MAX_CONNS"}},
		{name: "database url not postgres", set: map[string]string{"DATABASE_URL": "mysql://db/codewatch"},
			want: []string{"DATABASE_URL"}},
		{name: "database set but no ops token", unset: []string{"CODEWATCH_OPS_TOKEN"},
			want: []string{"CODEWATCH_OPS_TOKEN", "required"}},
		{name: "session ttl zero", set: map[string]string{"CODEWATCH_SESSION_TTL": "0"},
			want: []string{"CODEWATCH_SESSION_TTL"}},
		{name: "session ttl not a duration", set: map[string]string{"CODEWATCH_SESSION_TTL": "a day"},
			want: []string{"CODEWATCH_SESSION_TTL", `"a day"`}},
		{name: "public URL not http", set: map[string]string{"CODEWATCH_PUBLIC_URL": "ops.example.com"},
			want: []string{"CODEWATCH_PUBLIC_URL", "https://"}},
		{name: "public URL with a path", set: map[string]string{"CODEWATCH_PUBLIC_URL": "https://ops.example.com/codewatch"},
			want: []string{"CODEWATCH_PUBLIC_URL", "no path"}},
		{name: "database set but no data keys", unset: []string{"CODEWATCH_DATA_KEYS"},
			want: []string{"CODEWATCH_DATA_KEYS", "required"}},
		{name: "data key without id", set: map[string]string{"CODEWATCH_DATA_KEYS": "dGhpcyBpcyBub3QgYSBrZXkgYnV0IHNlY3JldCB0ZXh0"},
			want: []string{"CODEWATCH_DATA_KEYS", "id:base64key"}, secret: "dGhpcyBpcyBub3QgYSBrZXkgYnV0IHNlY3JldCB0ZXh0"},
		{name: "data key too short", set: map[string]string{"CODEWATCH_DATA_KEYS": "k1:c2hvcnRzZWNyZXRrZXk="},
			want: []string{"CODEWATCH_DATA_KEYS", "32 bytes"}, secret: "c2hvcnRzZWNyZXRrZXk="},
		{name: "flag value is checked like the variable", args: []string{"--removal-timeout", "abc"},
			want: []string{"CODEWATCH_REMOVAL_TIMEOUT", `"abc"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := configBase(t)
			for k, v := range tc.set {
				env[k] = v
			}
			for _, k := range tc.unset {
				delete(env, k)
			}
			start := time.Now()
			err, stdout, stderr := runServeInProcess(t, env, tc.args...)
			if err == nil {
				t.Fatal("serve started with an invalid configuration")
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2 (error: %v)", code, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s to reject the configuration: it went on starting", d)
			}
			line := err.Error()
			if strings.Contains(line, "\n") {
				t.Errorf("error is more than one line: %q", line)
			}
			if !strings.HasPrefix(line, tc.want[0]) {
				t.Errorf("error %q does not start with the variable %s", line, tc.want[0])
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q does not mention %q", line, w)
				}
			}
			if tc.secret != "" && strings.Contains(line+stderr+stdout, tc.secret) {
				t.Errorf("the rejected secret is echoed back: %q %q", line, stderr)
			}
			if stdout != "" || stderr != "" {
				t.Errorf("config error printed more than the one line: stdout %q stderr %q", stdout, stderr)
			}
		})
	}
}

// The real binary prints the error as exactly one line and exits 2.
func TestConfigErrorBinaryOneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, key, value string
		want             []string
	}{
		{"secret", "SEAM_WEBHOOK_SECRET", "notwhsec", []string{"SEAM_WEBHOOK_SECRET", "whsec_"}},
		{"log format", "CODEWATCH_LOG_FORMAT", "xml", []string{"CODEWATCH_LOG_FORMAT", "json or text"}},
		{"no ops token", "CODEWATCH_OPS_TOKEN", "", []string{"CODEWATCH_OPS_TOKEN"}},
		{"no data keys", "CODEWATCH_DATA_KEYS", "", []string{"CODEWATCH_DATA_KEYS", "required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := configBase(t)
			env[tc.key] = tc.value
			var list []string
			for k, v := range env {
				list = append(list, k+"="+v)
			}
			res := runCLI(t, list, "serve")
			if res.Code != 2 {
				t.Errorf("exit code %d, want 2; stderr %q", res.Code, res.Stderr)
			}
			lines := strings.Split(strings.TrimRight(res.Stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "codewatch: ") {
				t.Fatalf("stderr is not one \"codewatch: ...\" line: %q", res.Stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%q does not mention %q", lines[0], w)
				}
			}
			if res.Stdout != "" {
				t.Errorf("stdout: %q", res.Stdout)
			}
		})
	}
}

func TestConfigCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown serve flag", []string{"serve", "--no-such-flag"}, 2, "no-such-flag"},
		{"stray argument", []string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{"migrate without subcommand", []string{"migrate"}, 2, "up, down, status"},
		{"send without type", []string{"send", "--access-code-id", "x"}, 2, "EVENT_TYPE"},
		{"send access code event without id", []string{"send", "access_code.deleted", "--secret", newWebhookSecret()}, 2, "--access-code-id"},
		{"send bad occurred-at", []string{"send", "access_code.deleted", "--access-code-id", "x", "--occurred-at", "yesterday", "--secret", newWebhookSecret()}, 2, "--occurred-at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := configBase(t)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return env[k] }, &stdout, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if exitCode(err) != tc.code {
				t.Errorf("exit code %d, want %d (%v)", exitCode(err), tc.code, err)
			}
			if !strings.Contains(err.Error()+stderr.String(), tc.want) {
				t.Errorf("error %q / stderr %q does not mention %q", err, stderr.String(), tc.want)
			}
		})
	}
}

// Flags win over the environment, even over an invalid variable.
func TestConfigFlagsOverrideEnv(t *testing.T) {
	t.Parallel()
	env := newServeEnv(t, pgtest.NewURL(t))
	envListen := env["CODEWATCH_LISTEN"]
	env["CODEWATCH_REMOVAL_TIMEOUT"] = "abc" // invalid, but the flag replaces it
	env["CODEWATCH_LOG_FORMAT"] = "text"     // the flag says json
	flagListen := freeAddr(t)
	s := newServer(t, "serve", env, "--listen", flagListen, "--removal-timeout", "45m", "--log-format", "json")
	s.Public = "http://" + flagListen
	s.start()
	s.waitReady(30 * time.Second)

	resp, err := http.Get(s.Public + "/healthz")
	if err != nil {
		t.Fatalf("public listener not on the --listen address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz on --listen: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + envListen + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("something answers on CODEWATCH_LISTEN %s although --listen was given", envListen)
	}
	recs := s.logsWithMsg("codewatch serving") // fails the test on non-JSON lines
	if len(recs) != 1 {
		t.Fatalf("want one \"codewatch serving\" line, got %d:\n%s", len(recs), s.logs())
	}
	if recs[0]["listen"] != flagListen || recs[0]["removal_timeout"] != "45m0s" {
		t.Errorf("serving with listen=%v removal_timeout=%v, want %s and 45m0s", recs[0]["listen"], recs[0]["removal_timeout"], flagListen)
	}
	if code, _ := s.stop(15 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}
