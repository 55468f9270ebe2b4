package config

import (
	"bytes"
	"errors"
	"flag"
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
	if n := strings.Count(out, "(default (set))"); n != 9 {
		t.Errorf("%d flags say (set), want the 9 secret ones:\n%s", n, out)
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
