package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/localpg"
)

// Service settings the suite runs codewatch with.
const (
	dbMaxConns      = 4 // small: the pool-exhaustion scenario floods far past it
	shutdownTimeout = 10 * time.Second
)

// harness owns the private Postgres, the alert receiver and the codewatch
// process, and cleans all of them up.
type harness struct {
	bin      string
	dir      string
	pg       *localpg.Server
	recv     *receiver
	secret   string // SEAM_WEBHOOK_SECRET
	dataKeys string // CODEWATCH_DATA_KEYS
	alertSec string // CODEWATCH_ALERT_WEBHOOK_SECRET
	opsToken string
	pubAddr  string
	opsAddr  string
	verbose  bool

	// frozen lists Postgres processes stopped with SIGSTOP, to resume
	// them whatever happens.
	frozen []int

	// tsDir is a small tmpfs mounted for the disk-full scenario's
	// tablespace ("" until then).
	tsDir string

	mu  sync.Mutex
	svc *service
}

// service is one run of `codewatch serve`.
type service struct {
	cmd     *exec.Cmd
	pid     int
	logPath string
	done    chan struct{}
	err     error // from Wait, valid after done
	exited  time.Time
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func freeAddr() (string, error) {
	p, err := localpg.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

func newHarness(ctx context.Context, bin string, verbose bool) (*harness, error) {
	h := &harness{bin: bin, verbose: verbose, secret: newSecret(), alertSec: newSecret()}
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	h.opsToken = "faults:" + base64.RawURLEncoding.EncodeToString(tok)
	var err error
	if h.dataKeys, err = datakeys.Generate("faults"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "codewatch-faults-")
	if err != nil {
		return nil, err
	}
	h.dir = dir
	// The postgres user must be able to enter it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return h, err
	}
	if h.pubAddr, err = freeAddr(); err != nil {
		return h, err
	}
	if h.opsAddr, err = freeAddr(); err != nil {
		return h, err
	}
	if h.recv, err = startReceiver(h.alertSec); err != nil {
		return h, err
	}
	h.pg, err = localpg.Start(ctx, filepath.Join(dir, "pg"), localpg.Options{})
	if err != nil {
		return h, fmt.Errorf("start Postgres: %w", err)
	}
	return h, nil
}

// cleanup stops everything the harness started and removes its directory.
func (h *harness) cleanup() {
	if h == nil {
		return
	}
	h.mu.Lock()
	svc := h.svc
	h.mu.Unlock()
	if svc != nil {
		svc.kill()
	}
	if err := h.thawPG(); err != nil {
		fmt.Fprintln(os.Stderr, "faults: resume Postgres:", err)
	}
	if h.recv != nil {
		h.recv.close()
	}
	if h.pg != nil && h.pg.Running() {
		if err := h.pg.Stop("immediate"); err != nil {
			fmt.Fprintln(os.Stderr, "faults: stop Postgres:", err)
			_ = h.pg.Kill()
		}
	}
	if h.tsDir != "" {
		// Lazily: a backend that outlived a crashed postmaster may still
		// hold a file open.
		if err := syscall.Unmount(h.tsDir, syscall.MNT_DETACH); err != nil {
			fmt.Fprintln(os.Stderr, "faults: unmount", h.tsDir+":", err)
		}
	}
	if h.dir != "" {
		if err := os.RemoveAll(h.dir); err != nil {
			fmt.Fprintln(os.Stderr, "faults: remove", h.dir+":", err)
		}
	}
}

// createDB makes a fresh database for a scenario, in tablespace ts unless
// that is "" (local cluster setup: its SQL stays here, not in postgres/).
func (h *harness) createDB(ctx context.Context, name, ts string) (string, error) {
	conn, err := pgx.Connect(ctx, h.pg.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", err
	}
	create := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if ts != "" {
		create += " TABLESPACE " + pgx.Identifier{ts}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return "", err
	}
	return h.pg.URL(name), nil
}

func (h *harness) env(dbURL string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + h.dir,
		"DATABASE_URL=" + dbURL,
		"CODEWATCH_DATA_KEYS=" + h.dataKeys,
		"SEAM_WEBHOOK_SECRET=" + h.secret,
		"CODEWATCH_OPS_TOKEN=" + h.opsToken,
		"CODEWATCH_LISTEN=" + h.pubAddr,
		"CODEWATCH_OPS_LISTEN=" + h.opsAddr,
		"CODEWATCH_LOG_LEVEL=warn",
		"CODEWATCH_LOG_FORMAT=json",
		"CODEWATCH_DB_MAX_CONNS=" + strconv.Itoa(dbMaxConns),
		"CODEWATCH_SHUTDOWN_TIMEOUT=" + shutdownTimeout.String(),
		// Alerts come only from delays and failures, never from overdue.
		"CODEWATCH_REMOVAL_TIMEOUT=1h",
		"CODEWATCH_ALERT_WEBHOOK_URL=" + h.recv.url,
		"CODEWATCH_ALERT_WEBHOOK_SECRET=" + h.alertSec,
		"CODEWATCH_DATA_DIR=" + filepath.Join(h.dir, "data"),
	}
}

// startService starts `codewatch serve` on the harness's ports, its log
// appended to logName in the harness directory. It does not wait for it.
func (h *harness) startService(dbURL, logName string) (*service, error) {
	logPath := filepath.Join(h.dir, logName)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.bin, "serve")
	cmd.Env = h.env(dbURL)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group: a Ctrl-C at the terminal reaches the harness,
	// which then stops it, rather than killing it mid-check.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	s := &service{cmd: cmd, pid: cmd.Process.Pid, logPath: logPath, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		s.exited = time.Now()
		lf.Close()
		close(s.done)
	}()
	h.mu.Lock()
	h.svc = s
	h.mu.Unlock()
	return s, nil
}

// waitReady waits until the public listener answers /healthz.
func (h *harness) waitReady(ctx context.Context, s *service, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("codewatch exited: %v", s.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get("http://" + h.pubAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("codewatch not ready after %s", timeout)
}

func (s *service) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *service) kill() {
	if s.running() {
		_ = syscall.Kill(s.pid, syscall.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

// terminate sends SIGTERM and waits up to timeout; it reports how long the
// process took to exit and its error (nil: exit status 0).
func (s *service) terminate(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		return 0, err
	}
	select {
	case <-s.done:
		return s.exited.Sub(t0), s.err
	case <-time.After(timeout):
		s.kill()
		return time.Since(t0), fmt.Errorf("did not exit within %s of SIGTERM; killed", timeout)
	}
}

// rss reads VmRSS of the process in bytes.
func (s *service) rss() (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// restartPG starts Postgres again after a stop or a crash. Backends orphaned
// by a killed postmaster hold its shared memory for a moment, so a failed
// start is tried again, a bounded number of times.
func (h *harness) restartPG(ctx context.Context) error {
	var err error
	for i := 0; i < 40; i++ {
		if err = h.pg.Restart(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// Disk-full: the scenario's database lives in a tablespace on a tmpfs of
// tsSize; filling the tmpfs makes every relation extension fail with
// SQLSTATE 53100 (disk_full). WAL stays on the main disk: a full WAL disk
// makes Postgres PANIC and restart, which the crash scenario covers.
const (
	tsName = "faults_small_disk"
	tsSize = 64 << 20
)

// prepareSmallDisk mounts the tmpfs and creates the tablespace. It returns a
// reason to skip when this machine does not allow mounting.
func (h *harness) prepareSmallDisk(ctx context.Context) (skip string, err error) {
	if h.tsDir != "" {
		return "", nil
	}
	dir := filepath.Join(h.dir, "smalldisk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(h.pg.Dir, &st); err != nil {
		return "", err
	}
	opts := fmt.Sprintf("size=%d,mode=0700,uid=%d,gid=%d", tsSize, st.Uid, st.Gid)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Sprintf("cannot mount a small tmpfs for the tablespace (%v): needs root with CAP_SYS_ADMIN", err), nil
	}
	h.tsDir = dir
	conn, err := pgx.Connect(ctx, h.pg.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLESPACE "+tsName+" LOCATION '"+dir+"'")
	return "", err
}

func (h *harness) fillerPath() string { return filepath.Join(h.tsDir, "filler") }

// fillDisk writes a file until the tmpfs is full, in a bounded number of
// writes.
func (h *harness) fillDisk() (int64, error) {
	f, err := os.OpenFile(h.fillerPath(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	var n int64
	for i := 0; i < tsSize/len(buf)+16; i++ {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, fmt.Errorf("wrote %d bytes and the %d-byte disk is not full", n, tsSize)
}

func (h *harness) freeDisk() error { return os.Remove(h.fillerPath()) }

// pgPids lists this harness's postmaster and its children (backends and
// auxiliary processes), the postmaster first.
func (h *harness) pgPids() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(h.pg.Dir, "data", "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pm <= 0 {
		return nil, fmt.Errorf("postmaster.pid: %q", line)
	}
	out := []int{pm}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) >= 2 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pm {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// freezePG stops every process of the server with SIGSTOP, the postmaster
// first so that it forks no new backend meanwhile: the database stops
// answering without closing a connection, as a paused VM or a network
// partition looks.
func (h *harness) freezePG() (int, error) {
	pids, err := h.pgPids()
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err == nil {
			h.frozen = append(h.frozen, pid)
		}
	}
	return len(h.frozen), nil
}

// thawPG resumes what freezePG stopped.
func (h *harness) thawPG() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first error
	for i := len(h.frozen) - 1; i >= 0; i-- {
		if err := syscall.Kill(h.frozen[i], syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) && first == nil {
			first = err
		}
	}
	h.frozen = nil
	return first
}
