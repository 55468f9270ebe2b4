package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/logtest"
)

type devBuffer = logtest.Buffer

func devAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The README's first commands: `make run` (serve with no DATABASE_URL starts
// its own Postgres and makes a secret and a token) and, from a second
// terminal, `codewatch send` with no flags, then reading the status API.
func TestDevModeReadmeFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Postgres")
	}
	dir, err := os.MkdirTemp("", "codewatch-dev-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	env := map[string]string{
		"CODEWATCH_DATA_DIR":   filepath.Join(dir, ".codewatch"),
		"CODEWATCH_LISTEN":     devAddr(t),
		"CODEWATCH_OPS_LISTEN": devAddr(t),
		"CODEWATCH_LOG_FORMAT": "text",
	}
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &devBuffer{}, &devBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, stdout, stderr) }()

	opsURL := "http://" + env["CODEWATCH_OPS_LISTEN"]
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(opsURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s\n%s", err, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s\n%s", stdout, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	banner := stdout.String()
	st, err := readDevState(env["CODEWATCH_DATA_DIR"])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"http://" + env["CODEWATCH_LISTEN"] + "/webhooks/seam", st.WebhookSecret, st.OpsToken} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %q:\n%s", want, banner)
		}
	}
	if !strings.HasPrefix(st.WebhookSecret, "whsec_") {
		t.Fatalf("dev secret %q", st.WebhookSecret)
	}

	code := "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e"
	for _, typ := range []string{"access_code.set_on_device", "access_code.deleted"} {
		var out bytes.Buffer
		sendEnv := func(k string) string {
			if k == "CODEWATCH_DATA_DIR" {
				return env[k]
			}
			return ""
		}
		if err := run(ctx, []string{"send", typ, "--access-code-id", code}, sendEnv, &out, io.Discard); err != nil {
			t.Fatalf("send %s: %v\n%s", typ, err, out.String())
		}
		if !strings.Contains(out.String(), `200 {"ok":true}`) {
			t.Fatalf("send %s printed:\n%s", typ, out.String())
		}
	}

	req, _ := http.NewRequest(http.MethodGet, opsURL+"/v1/access_codes/"+code, nil)
	req.Header.Set("Authorization", "Bearer "+st.OpsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		AccessCode struct {
			DeletionState string `json:"deletion_state"`
			Events        []any  `json:"events"`
		} `json:"access_code"`
		OK bool `json:"ok"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || !got.OK || got.AccessCode.DeletionState != "awaiting_removal" || len(got.AccessCode.Events) != 2 {
		t.Fatalf("status API: %v %+v", err, got)
	}

	// Stored bodies are encrypted with a key development mode made and
	// keeps beside the database (never printed).
	sendEnv := func(k string) string {
		if k == "CODEWATCH_DATA_DIR" {
			return env[k]
		}
		return ""
	}
	fixed := []string{"send", "access_code.set_on_device", "--access-code-id", code, "--message-id", "msg_devkey",
		"--event-id", "0e1f8a41-2f1e-4c55-9a8a-7b3c2d1e0f99", "--occurred-at", "2026-06-01T10:00:00Z"}
	var out bytes.Buffer
	if err := run(ctx, fixed, sendEnv, &out, io.Discard); err != nil || !strings.Contains(out.String(), `200 {"ok":true}`) {
		t.Fatalf("send with a fixed message id: %v\n%s", err, out.String())
	}
	st, err = readDevState(env["CODEWATCH_DATA_DIR"])
	if err != nil || !strings.HasPrefix(st.DataKeys, devKeyID+":") {
		t.Fatalf("dev.json data_keys: %v", err)
	}
	if fi, err := os.Stat(devStatePath(env["CODEWATCH_DATA_DIR"])); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("dev.json holds the data key but is not private: %v %v", fi.Mode(), err)
	}
	if _, key, _ := strings.Cut(st.DataKeys, ":"); strings.Contains(stdout.String()+stderr.String(), key) {
		t.Error("serve printed the development data key")
	}

	stopServe := func() {
		t.Helper()
		cancel() // Ctrl-C
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not stop")
		}
		// The local Postgres stops with it.
		pid, _ := os.ReadFile(filepath.Join(env["CODEWATCH_DATA_DIR"], "pg", "data", "postmaster.pid"))
		if len(pid) > 0 {
			t.Fatalf("local Postgres still running after serve stopped")
		}
	}
	stopServe()

	// A second run reads what the first stored, with the same key: Svix's
	// retry of the message is a duplicate, which takes opening the stored
	// body to tell.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr = &devBuffer{}, &devBuffer{}
	done = make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, stdout, stderr) }()
	waitFor(t, 60*time.Second, "the second run to be ready", func() bool {
		resp, err := http.Get(opsURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	out.Reset()
	var errOut bytes.Buffer
	if err := run(ctx, fixed, sendEnv, &out, &errOut); err != nil || !strings.Contains(out.String(), `"duplicate":true`) {
		t.Fatalf("the same message after a restart: %v\n%s%s\nserve: %s%s", err, out.String(), errOut.String(), stdout, stderr)
	}
	if st2, _ := readDevState(env["CODEWATCH_DATA_DIR"]); st2 == nil || st2.DataKeys != st.DataKeys {
		t.Error("the second run replaced the development data key")
	}
	stopServe()

	// The commands use the kept key too (here rekey, which has nothing to
	// do: everything is under it).
	out.Reset()
	if err := run(context.Background(), []string{"rekey"}, sendEnv, &out, io.Discard); err != nil ||
		!strings.Contains(out.String(), "every stored body is under dev") {
		t.Fatalf("rekey in development mode: %v\n%s", err, out.String())
	}
}
