// Package pgbouncertest runs a private PgBouncer in transaction pooling mode in
// front of a test's Postgres, so tests can drive codewatch's database code
// through a real pooler: server connections are shared between transactions,
// so session state (named prepared statements, SET, advisory locks) does not
// follow a client from one transaction to the next.
//
// PgBouncer refuses to run as root, so as root it runs as the "postgres" user
// that Debian's packages create, as localpg does for Postgres.
package pgbouncertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/codewatch/codewatch/localpg"
)

// PoolSize is default_pool_size: server connections per database and user.
// It is small so that a test with more clients than this really multiplexes.
const PoolSize = 5

// ErrNotInstalled is returned (wrapped) by Start when no pgbouncer binary is found.
var ErrNotInstalled = errors.New("pgbouncer is not installed (Debian: apt-get install pgbouncer)")

// Upstream is the Postgres server PgBouncer connects to.
type Upstream struct {
	// Host is a TCP host name or address, or a Unix socket directory
	// (an absolute path), as in libpq.
	Host     string
	Port     int
	User     string
	Password string
}

// UpstreamFrom takes the server, user and password from a parsed connection
// string (its first host only).
func UpstreamFrom(c *pgconn.Config) Upstream {
	return Upstream{Host: c.Host, Port: int(c.Port), User: c.User, Password: c.Password}
}

// Server is a running PgBouncer.
type Server struct {
	Dir  string
	Port int
	// User is the name clients connect as: the upstream user, the only one
	// in the auth file.
	User string
	// Version is what `pgbouncer --version` says, e.g. "1.18.0".
	Version string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// Bin finds the pgbouncer binary. Debian installs it in /usr/sbin, which is
// not on every user's PATH.
func Bin() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", ErrNotInstalled
}

// Start writes pgbouncer.ini and userlist.txt into dir and runs PgBouncer
// in the foreground as a child of this process, listening on 127.0.0.1 at a
// free port. It returns once PgBouncer answers on its admin console. As root,
// dir is given to the postgres user, so its parents must let that user in
// (os.MkdirTemp("", ...) does; t.TempDir does not).
func Start(ctx context.Context, dir string, up Upstream) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if up.Host == "" || up.Port == 0 || up.User == "" {
		return nil, fmt.Errorf("pgbouncer: upstream needs host, port and user: %+v", up)
	}
	version, err := binVersion(ctx, bin)
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root needs the \"postgres\" user (created by Debian's postgresql package)")
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	// With auth_type = trust the password is not checked, but the user must
	// be listed.
	userlist := fmt.Sprintf("%s \"\"\n", quoteUser(up.User))
	if err := writePrivate(filepath.Join(dir, "userlist.txt"), userlist, uid, gid); err != nil {
		return nil, err
	}
	// The free port is found by binding and closing, so another process can
	// take it before PgBouncer binds it; then PgBouncer exits and we retry.
	var lastErr error
	for range 3 {
		port, err := localpg.FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Dir: dir, Port: port, User: up.User, Version: version}
		// It holds the upstream password.
		if err := writePrivate(s.iniFile(), Config(up, port, dir, version), uid, gid); err != nil {
			return nil, err
		}
		if err := s.run(ctx, bin, cred); err != nil {
			return nil, err
		}
		lastErr = s.waitReady(ctx)
		if lastErr == nil {
			return s, nil
		}
		s.Stop()
		if !strings.Contains(lastErr.Error(), "Address already in use") {
			break
		}
	}
	return nil, lastErr
}

// Config is the pgbouncer.ini that Start writes.
func Config(up Upstream, port int, dir, version string) string {
	conn := []string{"host=" + quoteValue(up.Host), "port=" + strconv.Itoa(up.Port), "user=" + quoteValue(up.User)}
	if up.Password != "" { // PgBouncer rejects an empty value
		conn = append(conn, "password="+quoteValue(up.Password))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `;; written by codewatch internal/pgbouncertest for tests
[databases]
;; any database name goes to the same server, so databases created per test
;; are reachable without a reload
* = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
;; no Unix socket: clients use TCP, and /tmp may hold another PgBouncer's
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
;; only used in session mode, but say so
server_reset_query =
;; pgx sends user, database and its config's RuntimeParams, not
;; extra_float_digits, so nothing is ignored: an unknown startup parameter
;; (plan_cache_mode) is refused, as by a default PgBouncer
ignore_startup_parameters =
log_connections = 0
log_disconnections = 0
`, strings.Join(conn, " "), port, filepath.Join(dir, "userlist.txt"), up.User, PoolSize)
	// PgBouncer 1.21 learned to track protocol-level prepared statements in
	// transaction mode (on by default from 1.22). Pin it off so that tests
	// passing here also pass against 1.18, which rejects the setting.
	if versionAtLeast(version, 1, 21) {
		b.WriteString("max_prepared_statements = 0\n")
	}
	return b.String()
}

// URL is a client connection string for database db through PgBouncer.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(s.User), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// AdminURL is the connection string of PgBouncer's admin console (SHOW
// POOLS, SHOW SERVERS; simple query protocol only).
func (s *Server) AdminURL() string { return s.URL("pgbouncer") }

// Stop ends PgBouncer and waits for it to exit: SIGTERM (immediate shutdown)
// to its process group, then SIGKILL if it lingers.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid // Setpgid: the group is led by the child
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
}

// Exited reports whether the process has ended, and how.
func (s *Server) Exited() (bool, error) {
	select {
	case <-s.done:
		return true, s.err
	default:
		return false, nil
	}
}

func (s *Server) iniFile() string { return filepath.Join(s.Dir, "pgbouncer.ini") }
func (s *Server) logFile() string { return filepath.Join(s.Dir, "pgbouncer.log") }

func (s *Server) run(ctx context.Context, bin string, cred *syscall.Credential) error {
	// Not -d: a foreground child cannot outlive the test by accident.
	cmd := exec.Command(bin, s.iniFile())
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		Setpgid:    true,
		// If the test binary dies without Stop (a panic, go test's -timeout),
		// PgBouncer gets SIGTERM rather than holding the port and upstream
		// connections.
		Pdeathsig: syscall.SIGTERM,
	}
	// Its log goes to a file, never to the test's stdout: go test would wait
	// for a pipe that a surviving child holds open.
	// Truncated: Start reads it to decide whether to retry on another port.
	lf, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return nil
}

// waitReady polls the admin console until it answers, PgBouncer exits, or
// 15 s pass.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		if exited, err := s.Exited(); exited {
			return fmt.Errorf("pgbouncer exited (%v): %s", err, s.Log())
		}
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		c, err := pgconn.Connect(cctx, s.AdminURL())
		if err == nil {
			_, err = c.Exec(cctx, "SHOW VERSION").ReadAll()
			_ = c.Close(cctx)
		}
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgbouncer not ready on port %d: %v; log: %s", s.Port, err, s.Log())
		case <-s.done:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Log returns PgBouncer's log so far, for error messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile())
	return strings.TrimSpace(string(b))
}

var versionRE = regexp.MustCompile(`PgBouncer (\d+\.\d+(?:\.\d+)?)`)

func binVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v: %s", bin, err, out)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version: no version in %q", bin, out)
	}
	return string(m[1]), nil
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(parts[1])
	return ma > major || ma == major && mi >= minor
}

// writePrivate writes a file that only PgBouncer's user may read.
func writePrivate(path, content string, uid, gid int) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Chown(path, uid, gid)
}

// quoteValue quotes a connection-string value the way PgBouncer's parser
// reads it: single quotes, a quote doubled.
func quoteValue(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// quoteUser quotes a name for the auth file: double quotes, doubled inside.
func quoteUser(u string) string {
	return `"` + strings.ReplaceAll(u, `"`, `""`) + `"`
}
