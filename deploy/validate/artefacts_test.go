package validate

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// Cheap consistency checks of the other files under deploy/ and of
// docs/operations.md. promtool checks the rules themselves (deploy/check.sh).

const (
	alertsFile  = "../prometheus/alerts.yml"
	composeFile = "../docker-compose.yml"
	dockerfile  = "../Dockerfile"
	opsDoc      = "../../docs/operations.md"
)

// buildFlags must stay identical in deploy/Dockerfile (and deploy/check.sh,
// which checks the same string).
const buildFlags = `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w"`

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// githubAnchors returns the anchors GitHub generates for the Markdown
// headings of doc (code fences skipped).
func githubAnchors(doc []byte) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

func TestAlertRulesHaveRunbooks(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Record      string            `json:"record"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, alertsFile), &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	anchors := githubAnchors(readFile(t, opsDoc))
	metric := regexp.MustCompile(`\bcodewatch_[a-z_]+`)
	known := []string{
		"codewatch_webhooks_received_total", "codewatch_signature_failures_total",
		"codewatch_ingest_duration_seconds", "codewatch_access_codes",
		"codewatch_needs_troubleshooting", "codewatch_oldest_unconfirmed_deletion_age_seconds",
		"codewatch_alerts_sent_total", "codewatch_alerts_failed_total",
		"codewatch_outbox_depth", "codewatch_last_webhook_received_timestamp_seconds",
		"codewatch_database_up", "codewatch_alerts_given_up_total", "codewatch_job_errors_total",
		"codewatch_flagged_total", "codewatch_codes_used_after_deletion_24h",
		"codewatch_locks_offline_with_unconfirmed_deletions",
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			for _, k := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[k]) == "" {
					t.Errorf("%s: annotation %s missing", r.Alert, k)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s: severity label missing", r.Alert)
			}
			rb := r.Annotations["runbook"]
			anchor, ok := strings.CutPrefix(rb, "docs/operations.md#")
			if !ok {
				t.Errorf("%s: runbook %q does not point into docs/operations.md", r.Alert, rb)
			} else if !anchors[anchor] {
				t.Errorf("%s: runbook anchor #%s has no heading in docs/operations.md", r.Alert, anchor)
			}
			for _, m := range metric.FindAllString(r.Expr, -1) {
				if !slices.Contains(known, m) {
					t.Errorf("%s: expr uses unknown metric %s", r.Alert, m)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerting rules found")
	}
}

func TestComposeFile(t *testing.T) {
	raw := readFile(t, composeFile)
	if _, err := yaml.YAMLToJSONStrict(raw); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	type service struct {
		Image       string            `json:"image"`
		Build       map[string]any    `json:"build"`
		EnvFile     any               `json:"env_file"`
		Environment map[string]string `json:"environment"`
		Ports       []string          `json:"ports"`
		DependsOn   map[string]struct {
			Condition string `json:"condition"`
		} `json:"depends_on"`
		Healthcheck struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
		StopGracePeriod string `json:"stop_grace_period"`
		ReadOnly        bool   `json:"read_only"`
	}
	var c struct {
		Services map[string]service `json:"services"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	pg, ok := c.Services["postgres"]
	if !ok || pg.Image != "postgres:15" {
		t.Errorf("want service postgres with image postgres:15, got %+v", pg.Image)
	}
	if !strings.Contains(strings.Join(pg.Healthcheck.Test, " "), "pg_isready") {
		t.Errorf("postgres healthcheck does not use pg_isready: %v", pg.Healthcheck.Test)
	}
	if len(pg.Ports) > 0 {
		t.Errorf("postgres should not publish ports: %v", pg.Ports)
	}

	cw, ok := c.Services["codewatch"]
	if !ok {
		t.Fatal("no codewatch service")
	}
	if cw.Build["dockerfile"] != "deploy/Dockerfile" || cw.Build["context"] != ".." {
		t.Errorf("codewatch build = %v, want context .. and dockerfile deploy/Dockerfile", cw.Build)
	}
	if cw.EnvFile != ".env" {
		t.Errorf("codewatch env_file = %v, want .env", cw.EnvFile)
	}
	if cw.DependsOn["postgres"].Condition != "service_healthy" {
		t.Errorf("codewatch must depend on postgres with condition service_healthy")
	}
	if v := cw.Environment["CODEWATCH_DATA_KEYS"]; !strings.HasPrefix(v, "${CODEWATCH_DATA_KEYS:?") {
		t.Errorf("CODEWATCH_DATA_KEYS = %q, want ${CODEWATCH_DATA_KEYS:?...} (from .env, required)", v)
	}
	if cw.Environment["CODEWATCH_OPS_LISTEN"] != ":9090" {
		t.Errorf("CODEWATCH_OPS_LISTEN = %q, want :9090", cw.Environment["CODEWATCH_OPS_LISTEN"])
	}
	var public, ops bool
	for _, p := range cw.Ports {
		switch {
		case strings.HasSuffix(p, ":9090"):
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("ops port mapping %q must bind 127.0.0.1 only", p)
			}
			ops = true
		case strings.HasSuffix(p, ":8080"):
			public = true
		}
	}
	if !public || !ops {
		t.Errorf("ports %v: want 8080 published and 9090 on 127.0.0.1", cw.Ports)
	}
	shutdown := defaultShutdownTimeout
	if v := cw.Environment["CODEWATCH_SHUTDOWN_TIMEOUT"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		shutdown = d
	}
	grace, err := time.ParseDuration(cw.StopGracePeriod)
	if err != nil || grace < shutdown+graceMargin {
		t.Errorf("stop_grace_period %q must be >= CODEWATCH_SHUTDOWN_TIMEOUT %s + %s", cw.StopGracePeriod, shutdown, graceMargin)
	}

	// Every variable the compose file passes must be documented in .env.example.
	example := string(readFile(t, filepath.Join(filepath.Dir(composeFile), ".env.example")))
	for _, k := range []string{"SEAM_WEBHOOK_SECRET", "CODEWATCH_OPS_TOKEN", "CODEWATCH_DATA_KEYS", "POSTGRES_PASSWORD"} {
		if !regexp.MustCompile(`(?m)^` + k + `=`).MatchString(example) {
			t.Errorf(".env.example lacks %s", k)
		}
	}
}

func TestDockerfile(t *testing.T) {
	df := string(readFile(t, dockerfile))
	var instr []string
	for _, line := range strings.Split(df, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr = append(instr, line)
	}
	has := func(prefix string) bool {
		return slices.ContainsFunc(instr, func(s string) bool { return strings.HasPrefix(s, prefix) })
	}
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"RUN " + buildFlags + " -o /out/codewatch ./cmd/codewatch",
		"ENV CODEWATCH_OPS_LISTEN=:9090",
		"EXPOSE 8080 9090",
		`ENTRYPOINT ["/usr/local/bin/codewatch"]`,
		`CMD ["serve"]`,
	} {
		if !has(want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if has("HEALTHCHECK") {
		t.Error("Dockerfile must not define HEALTHCHECK (distroless has no shell/curl; orchestrators probe /healthz and /readyz)")
	}
	if !has("USER ") || has("USER root") || has("USER 0") {
		t.Error("Dockerfile must switch to a non-root USER")
	}
	check := string(readFile(t, "../check.sh"))
	if !strings.Contains(check, buildFlags) || !strings.Contains(check, "CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'") {
		t.Error("deploy/check.sh must build with the same flags as the Dockerfile")
	}
}
