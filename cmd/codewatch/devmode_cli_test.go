package main

// Development mode (`make run`: serve with DATABASE_URL unset) through the
// real binary: a second run beside the first, and the interface it binds.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// devDataDir is a CODEWATCH_DATA_DIR the development Postgres can use (as
// root it runs as "postgres", which cannot enter t.TempDir()). A Postgres
// left running there (a server killed by a failing test cannot stop it) is
// stopped when the test ends.
func devDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "codewatch-dev-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	dataDir := filepath.Join(dir, ".codewatch")
	t.Cleanup(func() { // registered first, so it runs after the servers are gone
		if pid := postmasterPID(dataDir); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGINT) // fast shutdown
			for i := 0; i < 300 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		os.RemoveAll(dir)
	})
	return dataDir
}

// postmasterPID is the running development Postgres's pid, or 0.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "pg", "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// devEnv is `make run`'s environment: no database, no secrets (development
// mode makes them), free ports.
func devEnv(t *testing.T, dataDir string) serveEnv {
	env := newServeEnv(t, "")
	for _, k := range []string{"DATABASE_URL", "SEAM_WEBHOOK_SECRET", "CODEWATCH_OPS_TOKEN", "CODEWATCH_DATA_KEYS"} {
		delete(env, k)
	}
	env["CODEWATCH_DATA_DIR"] = dataDir
	return env
}

// waitDevReady waits for a development serve, then takes the credentials
// it generated.
func (s *server) waitDevReady() {
	s.t.Helper()
	s.waitReady(90 * time.Second) // the first start runs initdb
	st, err := readDevState(s.env["CODEWATCH_DATA_DIR"])
	if err != nil {
		s.t.Fatal(err)
	}
	s.Secret, s.Token = st.WebhookSecret, st.OpsToken
}

// summaryOK requires s's ops API to answer /v1/summary, which reads the
// database, with 200.
func summaryOK(t *testing.T, s *server, when string) {
	t.Helper()
	if st := s.api(http.MethodGet, "/v1/summary", s.Token, nil, nil); st != http.StatusOK {
		t.Fatalf("%s: %s /v1/summary answered %d (its database down?)", when, s.name, st)
	}
}

// A second `make run` on the same data directory must not take the first
// one's database down: with the first one's ports it stops at once with one
// line naming the busy address and the variable to change, before the
// banner and before touching Postgres; with ports of its own it runs beside
// the first and leaves the database running when it exits.
func TestDevModeSecondRunLeavesTheFirstAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Postgres")
	}
	t.Parallel()
	dataDir := devDataDir(t)
	envA := devEnv(t, dataDir)
	a := newServer(t, "A", envA)
	a.start()
	a.waitDevReady()
	summaryOK(t, a, "A ready")
	stateA, err := os.ReadFile(devStatePath(dataDir))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, listen, ops string
		busy, env         string // the address and the variable the error must name
	}{
		{"same ports", envA["CODEWATCH_LISTEN"], envA["CODEWATCH_OPS_LISTEN"], envA["CODEWATCH_LISTEN"], "CODEWATCH_LISTEN"},
		{"same ops port", freeAddr(t), envA["CODEWATCH_OPS_LISTEN"], envA["CODEWATCH_OPS_LISTEN"], "CODEWATCH_OPS_LISTEN"},
	} {
		envB := maps.Clone(envA)
		envB["CODEWATCH_LISTEN"], envB["CODEWATCH_OPS_LISTEN"] = tc.listen, tc.ops
		b := newServer(t, "B ("+tc.name+")", envB)
		b.start()
		code := b.wait(30 * time.Second)
		if took := b.exitedAt.Sub(b.started); took > 5*time.Second {
			t.Errorf("%s: took %s to give up", tc.name, took)
		}
		if code == 0 {
			t.Errorf("%s: B exited 0", tc.name)
		}
		ls := lines(b.logs())
		if len(ls) != 1 {
			t.Errorf("%s: want one line on stderr, got %d:\n%s", tc.name, len(ls), b.logs())
		} else if !strings.Contains(ls[0], tc.busy) || !strings.Contains(ls[0], tc.env) {
			t.Errorf("%s: %q does not name %s and %s", tc.name, ls[0], tc.busy, tc.env)
		}
		if out := b.stdout.String(); out != "" {
			t.Errorf("%s: B printed (a banner?) although it could not run:\n%s", tc.name, out)
		}
		summaryOK(t, a, "after B ("+tc.name+") gave up")
	}
	if st, _ := os.ReadFile(devStatePath(dataDir)); string(st) != string(stateA) {
		t.Errorf("a B that could not run rewrote %s:\n%s\nwas:\n%s", devStatePath(dataDir), st, stateA)
	}

	// Ports of its own: B finds A's Postgres running and shares it.
	envB := maps.Clone(envA)
	envB["CODEWATCH_LISTEN"], envB["CODEWATCH_OPS_LISTEN"] = freeAddr(t), freeAddr(t)
	b := newServer(t, "B (own ports)", envB)
	b.start()
	b.waitDevReady()
	summaryOK(t, b, "B beside A")
	summaryOK(t, a, "A beside B")
	if code, _ := b.stop(30 * time.Second); code != 0 {
		t.Errorf("B exited %d after SIGTERM", code)
	}
	summaryOK(t, a, "after B exited")
	if code, err := a.readyz(); err != nil || code != http.StatusOK {
		t.Errorf("A not ready after B exited: %d %v", code, err)
	}

	// A started the database, so A stops it.
	if code, _ := a.stop(30 * time.Second); code != 0 {
		t.Errorf("A exited %d after SIGTERM", code)
	}
	waitFor(t, 10*time.Second, "A to stop the Postgres it started", func() bool { return postmasterPID(dataDir) == 0 })
}

// nonLoopbackIPv4 is an address of this machine other processes could
// reach it at, or "" when it has none.
func nonLoopbackIPv4() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

func healthz(base string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/healthz: %d", base, resp.StatusCode)
	}
	return nil
}

// Development mode answers this machine only unless told otherwise, and
// its banner and log show the address really bound.
func TestDevModeListensOnLoopbackUnlessTold(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Postgres")
	}
	t.Parallel()
	dataDir := devDataDir(t) // the runs below take turns with one Postgres
	other := nonLoopbackIPv4()

	// run starts development serve with listen ("" leaves CODEWATCH_LISTEN
	// unset) and args, checks that it bound one of want (the banner's words
	// for it), and returns it running.
	run := func(t *testing.T, listen string, want []string, args ...string) *server {
		t.Helper()
		env := devEnv(t, dataDir)
		delete(env, "CODEWATCH_LISTEN")
		if listen != "" {
			env["CODEWATCH_LISTEN"] = listen
		}
		s := newServer(t, "serve", env, args...)
		_, port, _ := net.SplitHostPort(strings.Fields(want[0])[0])
		s.Public = "http://127.0.0.1:" + port
		s.start()
		deadline := time.Now().Add(90 * time.Second)
		for {
			if code, err := s.readyz(); err == nil && code == http.StatusOK {
				break
			}
			if s.exited() {
				if strings.Contains(s.logs(), "already in use") {
					t.Skipf("port %s was taken before serve could bind it: %s", port, s.logs())
				}
				t.Fatalf("serve exited (%v):\n%s", s.waitErr, s.logs())
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready:\n%s", s.logs())
			}
			time.Sleep(25 * time.Millisecond)
		}
		banner := s.stdout.String()
		bound := ""
		for _, w := range want {
			if strings.Contains(banner, "listening:       "+w+",") {
				bound = strings.Fields(w)[0]
			}
		}
		if bound == "" {
			t.Errorf("banner does not say it listens on %q:\n%s", want, banner)
		}
		if !strings.Contains(banner, "webhook URL:     http://127.0.0.1:"+port+"/webhooks/seam") {
			t.Errorf("banner's webhook URL is not on 127.0.0.1:%s:\n%s", port, banner)
		}
		recs := s.logsWithMsg("codewatch listening; connecting to the database")
		if len(recs) != 1 || recs[0]["listen"] != bound {
			t.Errorf("log says it listens on %v, the banner %s", recs, bound)
		}
		if err := healthz(s.Public); err != nil {
			t.Errorf("not answering on loopback: %v", err)
		}
		return s
	}
	stop := func(t *testing.T, s *server) {
		if code, _ := s.stop(30 * time.Second); code != 0 {
			t.Errorf("exit %d after SIGTERM", code)
		}
	}

	// The default port is CODEWATCH_LISTEN's :8080: only when it is free.
	t.Run("default", func(t *testing.T) {
		l, err := net.Listen("tcp", ":8080")
		if err != nil {
			t.Skipf("port 8080 is in use here (%v); the default cannot be tried", err)
		}
		l.Close()
		s := run(t, "", []string{"127.0.0.1:8080 (webhooks)"})
		if other == "" {
			t.Log("no address but loopback here: cannot check that others are refused")
		} else if err := healthz("http://" + net.JoinHostPort(other, "8080")); err == nil {
			t.Errorf("development mode answers on %s:8080 although CODEWATCH_LISTEN is unset", other)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Logf("%s:8080: %v", other, err)
		}
		stop(t, s)
	})
	for _, tc := range []struct {
		name string
		env  bool
	}{{"CODEWATCH_LISTEN", true}, {"--listen", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, port, _ := net.SplitHostPort(freeAddr(t))
			addr := "0.0.0.0:" + port
			// Go binds 0.0.0.0 as one IPv4 and IPv6 socket where it can, and
			// then reports [::].
			want := []string{addr + " (webhooks, on every interface)", "[::]:" + port + " (webhooks, on every interface)"}
			var s *server
			if tc.env {
				s = run(t, addr, want)
			} else {
				s = run(t, "", want, "--listen", addr)
			}
			if other != "" {
				if err := healthz("http://" + net.JoinHostPort(other, port)); err != nil {
					t.Errorf("told to listen on %s, but not answering on %s: %v", addr, other, err)
				}
			}
			stop(t, s)
		})
	}
}
