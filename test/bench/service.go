package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/verify"
)

// service is the codewatch binary running `serve` as a subprocess.
type service struct {
	cmd     *exec.Cmd
	pid     int
	pubURL  string // http://127.0.0.1:port
	opsURL  string
	logPath string
	exited  chan struct{}
	waitErr error
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return verify.SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// startService runs `bin serve` with its configuration in the environment
// (and nothing else of ours, so a DATABASE_URL in the caller's shell cannot
// leak in) and waits until its /readyz answers 200.
func startService(ctx context.Context, bin, dir, dbURL, secret, token string, extraEnv []string) (*service, error) {
	pub, err := localpg.FreePort()
	if err != nil {
		return nil, err
	}
	ops, err := localpg.FreePort()
	if err != nil {
		return nil, err
	}
	s := &service{
		pubURL:  fmt.Sprintf("http://127.0.0.1:%d", pub),
		opsURL:  fmt.Sprintf("http://127.0.0.1:%d", ops),
		logPath: filepath.Join(dir, "codewatch.log"),
		exited:  make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	// Stored bodies are encrypted: the service runs with a data key, as
	// in production.
	dataKey, err := datakeys.Generate("bench")
	if err != nil {
		logf.Close()
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"DATABASE_URL=" + dbURL,
		"CODEWATCH_DATA_KEYS=" + dataKey,
		"SEAM_WEBHOOK_SECRET=" + secret,
		"CODEWATCH_OPS_TOKEN=bench:" + token,
		fmt.Sprintf("CODEWATCH_LISTEN=127.0.0.1:%d", pub),
		fmt.Sprintf("CODEWATCH_OPS_LISTEN=127.0.0.1:%d", ops),
		"CODEWATCH_LOG_LEVEL=warn",
		"CODEWATCH_LOG_FORMAT=text",
		"CODEWATCH_DATA_DIR=" + filepath.Join(dir, "data"),
	}
	env = append(env, extraEnv...)
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C reaches only us and we stop it in
	// order; and SIGTERM if we die without doing so.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	go func() {
		s.waitErr = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.opsURL+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return s, fmt.Errorf("codewatch serve exited before it was ready (%v); its log:\n%s", s.waitErr, s.logTail(20))
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("codewatch serve not ready after 60s; its log:\n%s", s.logTail(20))
		}
	}
}

func (s *service) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for a clean exit, killing it after timeout.
func (s *service) stop(timeout time.Duration) error {
	if s == nil || s.cmd == nil {
		return nil
	}
	if !s.running() {
		return s.waitErr
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.waitErr
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("codewatch did not stop within " + timeout.String() + " of SIGTERM; killed")
	}
}

// logSummary counts the service's log lines (level warn and above) and
// shows the last n that are not alerts: the log sink writes every alert at
// warn, and the load raises some by design.
func (s *service) logSummary(n int) string {
	b, _ := os.ReadFile(s.logPath)
	var alerts int
	var other []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		switch {
		case l == "":
		case strings.Contains(l, " msg=alert "):
			alerts++
		default:
			other = append(other, l)
		}
	}
	out := fmt.Sprintf("service log: %d alert lines (log sink), %d other lines", alerts, len(other))
	if len(other) > n {
		other = other[len(other)-n:]
	}
	for _, l := range other {
		out += "\n    " + l
	}
	return out
}

func (s *service) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	return tail(string(b), n)
}

// startPostgres starts the benchmark's Postgres under tmp.
func startPostgres(ctx context.Context, tmp string, opts localpg.Options) (*localpg.Server, error) {
	srv, err := localpg.Start(ctx, tmp+"/pg", opts)
	if err != nil {
		// Start may fail after the server came up (creating the database):
		// SIGINT is the postmaster's fast shutdown.
		if pid := postmasterPID(tmp + "/pg/data"); pid > 0 {
			_ = killPID(pid)
		}
		return nil, fmt.Errorf("start Postgres: %w", err)
	}
	return srv, nil
}

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGINT) }

func stopPostgres(srv *localpg.Server) {
	if err := srv.Stop("fast"); err != nil {
		_ = srv.Kill()
	}
}

// openStore opens a pool of 4 connections on url, configured as the
// service configures its pool (postgres.PoolConfig), migrates the database
// and returns a Store on it with cfg. The caller closes store.Pool().
func openStore(ctx context.Context, url string, cfg postgres.Config) (*postgres.Store, error) {
	pcfg, err := postgres.PoolConfig(url)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	m, err := migrations.New(pool, nil)
	if err == nil {
		_, err = m.Up(ctx)
		m.Close()
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	ins, err := jobs.NewInserter(pool, nil)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return postgres.New(pool, ins, cfg), nil
}
