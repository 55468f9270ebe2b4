// Package localpg runs a private PostgreSQL server from the binaries
// installed on the machine: for `make run` when DATABASE_URL is unset, and for
// tests, benchmarks and the fault suite, which also stop and crash it.
//
// Postgres refuses to run as root, so as root the server runs as the
// "postgres" user that Debian's packages create.
package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a Postgres server whose data lives in Dir.
type Server struct {
	Dir  string
	Port int
	// Started is true when Start started the server (rather than finding it
	// running), so the caller knows whether to stop it.
	Started bool
	bin     string
	cred    *syscall.Credential
	uid     int
	gid     int
}

// Options tune Start.
type Options struct {
	// Settings are extra postgresql.conf settings, name to value.
	Settings map[string]string
}

// BinDir finds the newest installed PostgreSQL's bin directory.
func BinDir() (string, error) {
	if d := os.Getenv("CODEWATCH_PG_BIN"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		if p, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no PostgreSQL server found (looked in /usr/lib/postgresql/*/bin); install postgresql")
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func version(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// Start initialises dir on first use, then starts the server (or finds it
// already running, after a crash of the process that started it) and makes
// sure the database "codewatch" exists. The port is chosen once and kept in
// dir, so a restarted server answers at the same URL.
func Start(ctx context.Context, dir string, opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin, uid: os.Getuid(), gid: os.Getgid()}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root needs the \"postgres\" user (created by Debian's postgresql package)")
		}
		s.uid, _ = strconv.Atoi(u.Uid)
		s.gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)}
	}
	if err := os.MkdirAll(s.runDir(), 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{dir, s.runDir()} {
		if err := os.Chown(d, s.uid, s.gid); err != nil {
			return nil, err
		}
	}
	if err := s.readPort(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(s.dataDir(), "PG_VERSION")); err != nil {
		if err := s.initdb(ctx, opts); err != nil {
			return nil, err
		}
	}
	if !s.Running() {
		if err := s.start(ctx); err != nil {
			return nil, err
		}
		s.Started = true
	}
	if err := s.createDatabase(ctx, "codewatch"); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }
func (s *Server) runDir() string  { return filepath.Join(s.Dir, "run") }
func (s *Server) logFile() string { return filepath.Join(s.Dir, "postgres.log") }

// URL is a connection string for database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

func (s *Server) readPort() error {
	pf := filepath.Join(s.Dir, "port")
	if b, err := os.ReadFile(pf); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			s.Port = p
			return nil
		}
	}
	p, err := FreePort()
	if err != nil {
		return err
	}
	s.Port = p
	return os.WriteFile(pf, []byte(strconv.Itoa(s.Port)+"\n"), 0o644)
}

// FreePort returns a TCP port on 127.0.0.1 that no one listens on now, for
// a local server (this one, PgBouncer, the service under a test or a
// benchmark) to take. It picks below Linux's ephemeral range (32768-60999):
// a port there (as ":0" gives) can be taken, before the server binds it, by
// any outgoing connection of the many processes of a test run. Another
// process may still take it first, a race local tools accept.
func FreePort() (int, error) {
	for range 100 {
		p := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (s *Server) initdb(ctx context.Context, opts Options) error {
	if err := s.run(ctx, "initdb", "-D", s.dataDir(), "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return err
	}
	conf := map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "'" + s.runDir() + "'",
		"max_connections":         "200",
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"logging_collector":       "off",
	}
	for k, v := range opts.Settings {
		conf[k] = v
	}
	var b strings.Builder
	b.WriteString("\n# codewatch localpg\n")
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, conf[k])
	}
	f, err := os.OpenFile(filepath.Join(s.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(b.String())
	return err
}

func (s *Server) start(ctx context.Context) error {
	// A postmaster.pid left by a killed server would stop the start.
	if pid := s.pid(); pid > 0 && syscall.Kill(pid, 0) != nil {
		_ = os.Remove(filepath.Join(s.dataDir(), "postmaster.pid"))
	}
	lf, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	lf.Close()
	_ = os.Chown(s.logFile(), s.uid, s.gid)
	return s.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.dataDir(), "-l", s.logFile(),
		"-o", "-p "+strconv.Itoa(s.Port))
}

// Restart starts a server that was stopped or killed.
func (s *Server) Restart(ctx context.Context) error {
	if s.Running() {
		return nil
	}
	return s.start(ctx)
}

// pid is the postmaster's pid from postmaster.pid, or 0.
func (s *Server) pid() int {
	b, err := os.ReadFile(filepath.Join(s.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// Running reports whether the server accepts connections.
func (s *Server) Running() bool {
	pid := s.pid()
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Stop shuts the server down in the given pg_ctl mode: "fast" (roll back
// open transactions, disconnect) or "immediate" (abort, recover on start).
func (s *Server) Stop(mode string) error {
	if s.pid() == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.run(ctx, "pg_ctl", "stop", "-w", "-m", mode, "-D", s.dataDir())
}

// Kill crashes the server: SIGKILL to the postmaster, as an OOM killer would.
// Its backends exit on their own; the next start recovers from the WAL.
func (s *Server) Kill() error {
	pid := s.pid()
	if pid <= 0 {
		return errors.New("server not running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(25 * time.Millisecond)
	}
	return nil
}

func (s *Server) createDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
