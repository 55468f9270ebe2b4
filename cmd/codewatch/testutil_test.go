package main

// Helpers for the end-to-end tests: they build the real codewatch binary once
// per test binary, start `codewatch serve` with an explicit environment, and
// record the alerts it sends to webhook and Slack sinks.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/verify"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// goTool is `go env GOROOT`'s go: the toolchain running these tests (go test
// puts $GOROOT/bin first in PATH).
func goTool() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr == nil {
			goBin = "/usr/local/go/bin/go"
		} else {
			return "", fmt.Errorf("no go tool in PATH: %w", err)
		}
	}
	out, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go"), nil
}

// codewatchBin builds ./cmd/codewatch once per test binary. The binary lives
// at a fixed path per checkout (replaced atomically), so repeated runs do not
// pile up copies in the temp directory. CODEWATCH_E2E_RACE=1 builds it with
// the race detector (slow to build the first time).
func codewatchBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		goBin, err := goTool()
		if err != nil {
			binErr = err
			return
		}
		wd, err := os.Getwd()
		if err != nil {
			binErr = err
			return
		}
		sum := sha256.Sum256([]byte(wd))
		dir := filepath.Join(os.TempDir(), "codewatch-e2e-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			binErr = err
			return
		}
		name := "codewatch-" + hex.EncodeToString(sum[:6])
		args := []string{"build"}
		if os.Getenv("CODEWATCH_E2E_RACE") == "1" {
			args = append(args, "-race")
			name += "-race"
		}
		tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d", name, os.Getpid()))
		args = append(args, "-o", tmp, ".")
		cmd := exec.Command(goBin, args...)
		cmd.Dir = wd
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			_ = os.Remove(tmp)
			binErr = fmt.Errorf("go build: %v\n%s", err, out.String())
			return
		}
		binPath = filepath.Join(dir, name)
		binErr = os.Rename(tmp, binPath)
	})
	if binErr != nil {
		t.Fatalf("build codewatch: %v", binErr)
	}
	return binPath
}

// lockedBuffer is safe for a process's output and a reader.
type lockedBuffer = logtest.Buffer

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newWebhookSecret returns a fresh Svix endpoint secret.
func newWebhookSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return verify.SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// newDataKey returns a fresh CODEWATCH_DATA_KEYS entry with the given id.
func newDataKey(t testing.TB, id string) string {
	t.Helper()
	e, err := datakeys.Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// freeAddr is a free 127.0.0.1 address for a server the test starts.
func freeAddr(t testing.TB) string {
	t.Helper()
	p, err := localpg.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// serveEnv is an explicit, valid environment for `codewatch serve` on
// dbURL with fresh credentials and free ports. Tests change entries before
// starting the process.
type serveEnv map[string]string

func newServeEnv(t testing.TB, dbURL string) serveEnv {
	return serveEnv{
		"PATH":                       os.Getenv("PATH"),
		"HOME":                       t.TempDir(),
		"DATABASE_URL":               dbURL,
		"CODEWATCH_DATA_KEYS":        newDataKey(t, "k1"),
		"SEAM_WEBHOOK_SECRET":        newWebhookSecret(),
		"CODEWATCH_OPS_TOKEN":        "alice:" + randomHex(12),
		"CODEWATCH_LISTEN":           freeAddr(t),
		"CODEWATCH_OPS_LISTEN":       freeAddr(t),
		"CODEWATCH_LOG_FORMAT":       "json",
		"CODEWATCH_DATA_DIR":         t.TempDir(),
		"CODEWATCH_SHUTDOWN_TIMEOUT": "10s",
		"CODEWATCH_DB_MAX_CONNS":     "8",
	}
}

func (e serveEnv) list() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// opsToken is the token value (without the name).
func (e serveEnv) opsToken() string {
	tok := e["CODEWATCH_OPS_TOKEN"]
	if _, v, ok := strings.Cut(tok, ":"); ok {
		return v
	}
	return tok
}

// server is one running `codewatch serve`.
type server struct {
	t        testing.TB
	name     string
	cmd      *exec.Cmd
	env      serveEnv
	stderr   *lockedBuffer
	stdout   *lockedBuffer
	done     chan struct{}
	waitErr  error
	Public   string // http://host:port
	Ops      string
	Secret   string
	Token    string
	client   *http.Client
	started  time.Time
	exitedAt time.Time
}

// newServer prepares (but does not start) `codewatch serve args...`.
func newServer(t testing.TB, name string, env serveEnv, args ...string) *server {
	t.Helper()
	bin := codewatchBin(t)
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = env.list()
	cmd.Dir = t.TempDir()
	s := &server{t: t, name: name, cmd: cmd, env: env, stderr: &lockedBuffer{}, stdout: &lockedBuffer{},
		done: make(chan struct{}), Public: "http://" + env["CODEWATCH_LISTEN"], Ops: "http://" + env["CODEWATCH_OPS_LISTEN"],
		Secret: strings.Split(env["SEAM_WEBHOOK_SECRET"], ",")[0], Token: env.opsToken(),
		client: &http.Client{Timeout: 10 * time.Second}}
	cmd.Stderr, cmd.Stdout = s.stderr, s.stdout
	return s
}

// start starts the process; it is killed (if still running) when the test
// ends, and its log is printed when the test failed.
func (s *server) start() {
	s.t.Helper()
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("%s: start: %v", s.name, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		s.exitedAt = time.Now()
		close(s.done)
	}()
	s.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if s.t.Failed() {
			s.t.Logf("%s stderr (last 6000 bytes):\n%s", s.name, tail(s.stderr.String(), 6000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// startServer starts `codewatch serve` and waits until /readyz answers 200.
// A port picked free and taken by another process before serve bound it is
// picked again (env is updated), a few times.
func startServer(t testing.TB, name string, env serveEnv, args ...string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := newServer(t, name, env, args...)
		s.start()
		if attempt < 5 && s.lostItsPort(30*time.Second) {
			env["CODEWATCH_LISTEN"], env["CODEWATCH_OPS_LISTEN"] = freeAddr(t), freeAddr(t)
			continue
		}
		s.waitReady(30 * time.Second)
		return s
	}
}

// lostItsPort reports whether s exited at start because a port it was
// given was taken meanwhile (it waits until s is ready, exits, or timeout).
func (s *server) lostItsPort(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s.exited() {
			return strings.Contains(s.stderr.String(), "is already in use")
		}
		if code, err := s.readyz(); err == nil && code == http.StatusOK {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// readyz returns /readyz's status, or an error when nothing answers.
func (s *server) readyz() (int, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.Ops + "/readyz")
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *server) waitReady(timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s.exited() {
			s.t.Fatalf("%s exited before it was ready (%v):\n%s", s.name, s.waitErr, tail(s.stderr.String(), 4000))
		}
		if code, err := s.readyz(); err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not ready after %s:\n%s", s.name, timeout, tail(s.stderr.String(), 4000))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (s *server) stop(timeout time.Duration) (int, time.Duration) {
	s.t.Helper()
	at := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !s.exited() {
		s.t.Fatalf("%s: SIGTERM: %v", s.name, err)
	}
	return s.wait(timeout), time.Since(at)
}

// wait waits for the process to exit and returns its exit code.
func (s *server) wait(timeout time.Duration) int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.t.Fatalf("%s did not exit within %s", s.name, timeout)
	}
	return s.cmd.ProcessState.ExitCode()
}

// logs is everything the process wrote to stderr so far.
func (s *server) logs() string { return s.stderr.String() }

// logRecords parses every stderr line as one JSON object; a line that is
// not JSON fails the test (CODEWATCH_LOG_FORMAT=json).
func (s *server) logRecords() []map[string]any {
	s.t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			s.t.Errorf("%s: log line is not JSON: %q", s.name, line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// logsWithMsg returns the log records whose msg is msg.
func (s *server) logsWithMsg(msg string) []map[string]any {
	var out []map[string]any
	for _, r := range s.logRecords() {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// api calls the ops API with the bearer token (token "" sends none) and
// decodes the JSON reply into out (when non-nil).
func (s *server) api(method, path, token string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.Ops+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// code reads one access code through GET /v1/access_codes/{id}.
func (s *server) code(id string) lifecycle.AccessCode {
	s.t.Helper()
	var out struct {
		AccessCode lifecycle.AccessCode `json:"access_code"`
		OK         bool                 `json:"ok"`
	}
	if st := s.api(http.MethodGet, "/v1/access_codes/"+id, s.Token, nil, &out); st != http.StatusOK || !out.OK {
		s.t.Fatalf("%s: GET access code %s: status %d", s.name, id, st)
	}
	return out.AccessCode
}

// webhookURL is where Seam would post.
func (s *server) webhookURL() string { return s.Public + "/webhooks/seam" }

// cliResult is one run of the binary as a command.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

// runCLI runs `codewatch args...` with exactly env (plus PATH and HOME), in
// an empty directory so no development state is picked up.
func runCLI(t testing.TB, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, codewatchBin(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"CODEWATCH_DATA_DIR=" + t.TempDir()}, env...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("codewatch %s: %v", strings.Join(args, " "), err)
	}
	return cliResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// sinkAlert is one alert as a sink received it.
type sinkAlert struct {
	AlertID string
	Type    string
	Code    string
	Reason  string
	Payload *lifecycle.AlertPayload // webhook sink only
	At      time.Time
}

// alertRecorder is a test HTTP server standing in for an alert sink.
type alertRecorder struct {
	srv   *httptest.Server
	mu    sync.Mutex
	got   []sinkAlert
	bad   []string
	calls atomic.Int64
}

func (r *alertRecorder) URL() string { return r.srv.URL }

func (r *alertRecorder) add(a sinkAlert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
}

func (r *alertRecorder) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
}

// alerts returns what was received, optionally only for one code.
func (r *alertRecorder) alerts(code string) []sinkAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sinkAlert
	for _, a := range r.got {
		if code == "" || a.Code == code {
			out = append(out, a)
		}
	}
	return out
}

// problems returns requests the recorder refused (bad signature, bad body).
func (r *alertRecorder) problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// newWebhookRecorder verifies each alert's signature with secret (svix,
// Standard Webhooks headers) and that webhook-id is the alert_id.
func newWebhookRecorder(t testing.TB, secret string) *alertRecorder {
	t.Helper()
	v, err := verify.New([]string{secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &alertRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.calls.Add(1)
		body, _ := io.ReadAll(req.Body)
		if req.Method != http.MethodPost || req.Header.Get("webhook-id") == "" {
			r.fail("not a Standard Webhooks POST: %s %v", req.Method, req.Header)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		msgID, err := v.Verify(body, req.Header)
		if err != nil {
			r.fail("signature: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p lifecycle.AlertPayload
		if err := json.Unmarshal(body, &p); err != nil {
			r.fail("body: %v: %s", err, body)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if msgID != p.AlertID {
			r.fail("webhook-id %q is not the alert_id %q", msgID, p.AlertID)
		}
		reason := ""
		if p.TroubleshootingReason != nil {
			reason = *p.TroubleshootingReason
		}
		r.add(sinkAlert{AlertID: p.AlertID, Type: p.Type, Code: p.AccessCodeID, Reason: reason, Payload: &p, At: time.Now()})
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

var (
	slackAlertID = regexp.MustCompile("alert_id `([0-9a-f-]{36})`")
	slackCode    = regexp.MustCompile("Access code `([^`]+)`")
	slackReason  = regexp.MustCompile("Reason: `([a-z_]+)`")
)

// newSlackRecorder records Slack incoming-webhook posts at path and reads the
// alert back out of the text.
func newSlackRecorder(t testing.TB, path string) *alertRecorder {
	t.Helper()
	r := &alertRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.calls.Add(1)
		body, _ := io.ReadAll(req.Body)
		if req.URL.Path != path {
			r.fail("posted to %q, want %q", req.URL.Path, path)
		}
		var m struct {
			Text   string `json:"text"`
			Blocks []any  `json:"blocks"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.Text == "" || len(m.Blocks) == 0 {
			r.fail("not a Slack message: %s", body)
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		a := sinkAlert{At: time.Now()}
		if g := slackAlertID.FindStringSubmatch(m.Text); g != nil {
			a.AlertID = g[1]
		}
		if g := slackCode.FindStringSubmatch(m.Text); g != nil {
			a.Code = g[1]
		}
		if g := slackReason.FindStringSubmatch(m.Text); g != nil {
			a.Reason = g[1]
		}
		switch {
		case strings.HasPrefix(m.Text, ":rotating_light:") && strings.Contains(m.Text, "(still unresolved)"):
			a.Type = lifecycle.AlertReminder // critical
		case strings.HasPrefix(m.Text, ":rotating_light:"), strings.HasPrefix(m.Text, ":warning:"):
			a.Type = lifecycle.AlertTrouble
		case strings.HasPrefix(m.Text, ":white_check_mark:"):
			a.Type = lifecycle.AlertResolved
		case strings.HasPrefix(m.Text, ":hourglass:"):
			a.Type = lifecycle.AlertReminder
		}
		if a.AlertID == "" || a.Code == "" || a.Type == "" {
			r.fail("cannot read the alert out of %q", m.Text)
		}
		r.add(a)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitFor polls cond until it is true or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var freshDBs atomic.Int64

// freshDatabase creates an empty database (no schema, no goose table) on the
// test server and returns its URL; it is dropped when the test ends.
func freshDatabase(t testing.TB) string {
	t.Helper()
	admin := pgtest.NewURL(t) // also makes sure the test server is up
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("codewatch_e2e_fresh_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, freshDBs.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatalf("create fresh database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return pgtest.URL(name)
}

// dbConn connects to dbURL for the test's own queries.
func dbConn(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// assertMigratedOnce checks that goose recorded each embedded migration as
// applied exactly once.
func assertMigratedOnce(t testing.TB, dbURL string) {
	t.Helper()
	names, err := migrations.Names()
	if err != nil {
		t.Fatal(err)
	}
	// The versions are the files' numbers, which may have gaps (a number
	// left free for a migration on another branch).
	var versions []int64
	for _, n := range names {
		if strings.HasSuffix(n, ".sql") {
			var v int64
			if _, err := fmt.Sscanf(n, "%d_", &v); err != nil {
				t.Fatalf("migration %s: no version number", n)
			}
			versions = append(versions, v)
		}
	}
	want := len(versions)
	conn := dbConn(t, dbURL)
	rows, err := conn.Query(context.Background(), `SELECT version_id, count(*) FROM goose_db_version
		WHERE version_id > 0 AND is_applied GROUP BY 1 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type vc struct{ v, n int64 }
	var got []vc
	for rows.Next() {
		var r vc
		if err := rows.Scan(&r.v, &r.n); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != want {
		t.Errorf("goose_db_version has %d versions applied, want %d: %v", len(got), want, got)
	}
	for i, g := range got {
		if i >= len(versions) || g.v != versions[i] || g.n != 1 {
			t.Errorf("goose_db_version: version %d recorded %d times (want each of %v once): %v", g.v, g.n, versions, got)
		}
	}
}
