package migrations_test

import (
	"bytes"

	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/logtest"
	"github.com/codewatch/codewatch/localpg"
)

// oldReplicaBinary builds codewatch as it was before first (the first
// migration after exemptThrough) was added: the version whose replicas keep
// serving while the first new replica migrates. It reads that version from
// the repository's history (git archive of the commit before the one that
// added first, or of HEAD while first is not committed yet) and builds it
// with this machine's Go. Without the history (not a git checkout, or a
// shallow clone that lacks the commit) the test is skipped, saying why.
func oldReplicaBinary(t *testing.T, first string) string {
	t.Helper()
	git := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		cmd := exec.Command("git", append([]string{"-C", ".."}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the old version cannot be built")
	}
	added, err := git("log", "--diff-filter=A", "--format=%H", "--", "migrations/"+first)
	if err != nil {
		t.Skipf("not a git checkout, the old version cannot be built: %v", err)
	}
	rev := "HEAD"
	if lines := strings.Fields(added); len(lines) > 0 {
		rev = lines[len(lines)-1] + "^"
	}
	commit, err := git("rev-parse", "--verify", rev+"^{commit}")
	if err != nil {
		t.Skipf("the history lacks the version before %s (a shallow clone?): %v", first, err)
	}
	dir := t.TempDir()
	archive := exec.Command("git", "-C", "..", "archive", "--format=tar", commit)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", commit, err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar %s: %v", commit, err)
	}
	bin := filepath.Join(dir, "codewatch-old")
	// The Makefile's flags, so that make build's compiled packages are reused.
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/codewatch")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build codewatch at %s: %v\n%s", commit, err, out)
	}
	t.Logf("built codewatch at %.12s (before %s) in %s", commit, first, time.Since(start).Round(time.Millisecond))
	return bin
}

// startOldReplica runs the old version's `codewatch serve --no-migrate`
// against dbURL (its sessions named oldReplica, as watchLockWaits looks for
// them) and returns its webhook URL once it is ready. It is stopped when the
// test ends.
func startOldReplica(t *testing.T, dbURL, first string) string {
	t.Helper()
	bin := oldReplicaBinary(t, first)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", oldReplica)
	u.RawQuery = q.Encode()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	public, ops := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve", "--no-migrate")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"DATABASE_URL=" + u.String(),
		"CODEWATCH_DATA_KEYS=old:" + base64.StdEncoding.EncodeToString(key),
		"SEAM_WEBHOOK_SECRET=" + upgradeSecret,
		"CODEWATCH_OPS_TOKEN=ops:" + strings.Repeat("t", 24),
		"CODEWATCH_LISTEN=" + public, "CODEWATCH_OPS_LISTEN=" + ops,
		"CODEWATCH_LOG_FORMAT=json", "CODEWATCH_DATA_DIR=" + t.TempDir(),
		"CODEWATCH_DB_MAX_CONNS=10", "CODEWATCH_SHUTDOWN_TIMEOUT=5s",
	}
	logs := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("old replica's log:\n%s", logs)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + public + "/webhooks/seam"
			}
		}
		select {
		case <-done:
			t.Fatalf("the old replica exited:\n%s", logs)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old replica was not ready in 60 s:\n%s", logs)
		}
	}
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
