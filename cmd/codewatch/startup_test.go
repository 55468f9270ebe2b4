package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// Defect: a migration the database refuses was retried forever at start-up.
// Now serve (and migrate up) exit non-zero at once with one line naming the
// migration and Postgres's error.
func TestFailingMigrationStopsStartup(t *testing.T) {
	t.Parallel()
	db := freshDatabase(t)
	conn := dbConn(t, db)
	// Something in the way of the first migration.
	if _, err := conn.Exec(context.Background(), `CREATE TABLE events (wrong integer)`); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, "serve", newServeEnv(t, db))
	s.start()
	if code := s.wait(20 * time.Second); code == 0 {
		t.Fatalf("serve exited 0 with a failing migration")
	}
	lines := strings.Split(strings.TrimSpace(s.logs()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"00001_events.sql", `relation "events" already exists`, "42P07"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q lacks %q", last, want)
		}
	}
	if n := strings.Count(s.logs(), "retrying"); n > 0 {
		t.Errorf("a refused migration was retried %d times:\n%s", n, s.logs())
	}
	res := runCLI(t, []string{"DATABASE_URL=" + db}, "migrate", "up")
	if res.Code == 0 || !strings.Contains(res.Stderr, "00001_events.sql") || strings.Count(strings.TrimSpace(res.Stderr), "\n") != 0 {
		t.Errorf("migrate up: exit %d, stderr %q; want one line naming the migration", res.Code, res.Stderr)
	}
}

// freezer is a TCP proxy in front of Postgres that can stop passing bytes
// while keeping every connection open: a database that hangs, as a frozen
// VM or a stuck disk would make it.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, thaw: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); f.unfreeze() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *freezer) serve(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				f.wait()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
}

// wait blocks while frozen.
func (f *freezer) wait() {
	f.mu.Lock()
	frozen, thaw := f.frozen, f.thaw
	f.mu.Unlock()
	if frozen {
		<-thaw
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = true
}

func (f *freezer) unfreeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen {
		f.frozen = false
		close(f.thaw)
		f.thaw = make(chan struct{})
	}
}

// through rewrites a Postgres URL to go through the proxy.
func (f *freezer) through(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" {
		t.Skipf("the test database %q is not reached over TCP; the freeze proxy needs it", dbURL)
	}
	u.Host = f.ln.Addr().String()
	return u.String()
}

// Defect: shutdown could hang when the database froze (writes without a
// deadline, an unbounded wait for background work). CODEWATCH_SHUTDOWN_TIMEOUT
// now bounds the whole of it: with a webhook stuck on a frozen database and
// jobs running, SIGTERM ends the process within the timeout.
func TestShutdownWithFrozenDatabaseIsBounded(t *testing.T) {
	t.Parallel()
	db := pgtest.NewURL(t)
	u, _ := url.Parse(db)
	f := newFreezer(t, u.Host)
	env := newServeEnv(t, f.through(t, db))
	env["CODEWATCH_SHUTDOWN_TIMEOUT"] = "2s"
	env["CODEWATCH_SWEEP_INTERVAL"] = "100ms"
	s := startServer(t, "serve", env)
	sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret, Client: &http.Client{Timeout: 30 * time.Second}}
	body, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: seamevent.NewID()})
	if rep, err := sender.Send(context.Background(), seamevent.NewMessageID(), body); err != nil || rep.Status != http.StatusOK {
		t.Fatalf("before the freeze: %v %d", err, rep.Status)
	}

	f.freeze()
	stuck := make(chan int, 1)
	go func() {
		rep, _ := sender.Send(context.Background(), seamevent.NewMessageID(), body)
		stuck <- rep.Status
	}()
	time.Sleep(300 * time.Millisecond) // the webhook is now waiting on the database
	code, took := s.stop(15 * time.Second)
	if took > 4*time.Second {
		t.Errorf("shutdown took %s with a 2s CODEWATCH_SHUTDOWN_TIMEOUT", took)
	}
	if !strings.Contains(s.logs(), "shutdown timed out") {
		t.Errorf("the log does not say the shutdown timed out (exit %d):\n%s", code, tail(s.logs(), 3000))
	}
	select {
	case st := <-stuck:
		if st == http.StatusOK {
			t.Errorf("a webhook was acknowledged while the database was frozen")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the stuck webhook never got an answer or a closed connection")
	}
}

// `codewatch quarantine retry` stores what this version can use and says
// what it did.
func TestQuarantineRetryCommand(t *testing.T) {
	t.Parallel()
	db := pgtest.NewURL(t)
	conn := dbConn(t, db)
	code := seamevent.NewID()
	body, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: code})
	for _, q := range []struct{ msg, reason, body string }{
		{"msg_old_refusal", "invalid_occurred_at: refused by an older version", string(body)},
		{"msg_garbage", "not_json: body is not a JSON object", "garbage"},
	} {
		if _, err := conn.Exec(context.Background(), `INSERT INTO quarantine (message_id, reason, raw) VALUES ($1, $2, $3)`,
			q.msg, q.reason, []byte(q.body)); err != nil {
			t.Fatal(err)
		}
	}
	// Stored bodies are encrypted: without the keys retry cannot read them.
	if res := runCLI(t, []string{"DATABASE_URL=" + db}, "quarantine", "retry"); res.Code != 2 ||
		strings.Count(res.Stderr, "\n") != 1 || !strings.Contains(res.Stderr, "CODEWATCH_DATA_KEYS: required") {
		t.Errorf("quarantine retry without keys: exit %d %q", res.Code, res.Stderr)
	}
	// These rows were stored in clear (key_id NULL), as by a version before
	// encryption: retry reads them all the same.
	env := []string{"DATABASE_URL=" + db, "CODEWATCH_DATA_KEYS=" + newDataKey(t, "k1")}
	res := runCLI(t, env, "quarantine", "retry", "--reason", "invalid_")
	if res.Code != 0 || !strings.Contains(res.Stdout, "quarantine retry done: 1 stored, 0 duplicates, 0 still unusable") {
		t.Fatalf("quarantine retry --reason invalid_: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = runCLI(t, env, "quarantine", "retry")
	if res.Code != 0 || !strings.Contains(res.Stdout, "done: 0 stored, 0 duplicates, 1 still unusable") {
		t.Fatalf("quarantine retry: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	var state string
	if err := conn.QueryRow(context.Background(), `SELECT deletion_state FROM access_codes WHERE access_code_id = $1`, code).Scan(&state); err != nil || state != "awaiting_removal" {
		t.Fatalf("the stored deletion: %q %v", state, err)
	}
}

// Defect: while the database could not be reached at start, neither listener
// answered and each retry logged a multi-line warning. Both listeners now
// answer at once: /healthz 200, /readyz 503 with the reason, webhooks 503
// (Seam retries), /v1 503; one log line per retry with the attempt number
// and the next delay.
func TestDatabaseUnreachableAtStart(t *testing.T) {
	t.Parallel()
	env := newServeEnv(t, "postgres://codewatch:pw@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	s := newServer(t, "serve", env)
	s.start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.Public + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the public /healthz never answered: %v\n%s", err, s.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := get(s.Ops+"/healthz", ""); st != http.StatusOK {
		t.Errorf("ops /healthz: %d", st)
	}
	if st, body := get(s.Ops+"/readyz", ""); st != http.StatusServiceUnavailable || !strings.Contains(body, "database") {
		t.Errorf("/readyz: %d %s; want 503 with the reason", st, body)
	}
	if st, body := get(s.Ops+"/v1/summary", s.Token); st != http.StatusServiceUnavailable || !strings.Contains(body, `"ok":false`) {
		t.Errorf("/v1/summary: %d %s; want 503", st, body)
	}
	sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret}
	body, _ := seamevent.Build(lifecycle.TypeDeleted, seamevent.Options{AccessCodeID: seamevent.NewID()})
	if rep, err := sender.Send(context.Background(), seamevent.NewMessageID(), body); err != nil || rep.Status != http.StatusServiceUnavailable {
		t.Errorf("webhook: %v %d %s; want 503 so that Seam retries", err, rep.Status, rep.Body)
	}
	// Retries are logged one line each, numbered, with the next delay.
	for time.Now().Before(deadline) && len(s.logsWithMsg("database not ready; retrying")) < 3 {
		time.Sleep(50 * time.Millisecond)
	}
	retries := s.logsWithMsg("database not ready; retrying")
	if len(retries) < 3 {
		t.Fatalf("%d retry lines:\n%s", len(retries), s.logs())
	}
	for i, r := range retries[:3] {
		if r["attempt"] != float64(i+1) || r["retry_in"] == nil || strings.Contains(fmt.Sprint(r["error"]), "\n") {
			t.Errorf("retry line %d: %v", i, r)
		}
	}
	if strings.Contains(s.logs(), "pw@") {
		t.Errorf("the log shows the database password")
	}
	if code, _ := s.stop(10 * time.Second); code != 0 {
		t.Errorf("exit code %d on SIGTERM while waiting for the database", code)
	}
}
