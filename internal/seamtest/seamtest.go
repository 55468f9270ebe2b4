// Package seamtest starts Seam's own fake of its API
// (@seamapi/fake-seam-connect, pinned in test/seamtest/package.json) for a
// test, through test/seamtest/server.mjs, and drives what its HTTP API
// cannot: events that were never webhooks, devices going offline, codes
// put straight into its database.
//
// Needs Node.js and npm. The first Start on a machine runs `npm ci` in
// test/seamtest (a few seconds); test binaries running in parallel take
// turns through a lock file.
package seamtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/logtest"
)

// Fake is one running fake, seeded with the package's default seed.
type Fake struct {
	// URL is the fake's API root, on 127.0.0.1.
	URL string `json:"url"`
	// APIKey is the seed's key for WorkspaceID.
	APIKey      string `json:"api_key"`
	WorkspaceID string `json:"workspace_id"`
	// Devices are the seed's two August locks in WorkspaceID.
	Devices []string `json:"devices"`
	// Version is the fake package's version.
	Version string `json:"fake_version"`

	hc *http.Client
}

// How long starting may take: npm ci on a cold cache, then node loading the
// fake's 5 MB bundle.
const (
	installTimeout = 5 * time.Minute
	readyTimeout   = time.Minute
)

// Start starts a fake for t and stops it when t ends. It skips t when Node.js
// is not installed.
func Start(t testing.TB) *Fake {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil && os.Getenv("CODEWATCH_REQUIRE_NODE") != "" {
		t.Fatal("seamtest: Node.js (node) is not installed and CODEWATCH_REQUIRE_NODE is set (CI): apt-get install nodejs npm")
	}
	if err != nil {
		t.Skip("seamtest: Node.js (node) is not installed; these tests need it to run Seam's fake (apt-get install nodejs npm)")
	}
	dir, err := fakeDir()
	if err != nil {
		t.Fatalf("seamtest: %v", err)
	}
	release, took, err := ensureInstalled(dir)
	if err != nil {
		t.Fatalf("seamtest: %v", err)
	}
	if took > 0 {
		t.Logf("seamtest: npm ci in %s took %v", dir, took.Round(time.Millisecond))
	}
	f, err := start(t, node, dir)
	for try := 1; err != nil && errors.Is(err, errPortTaken) && try < 3; try++ {
		f, err = start(t, node, dir)
	}
	release() // the fake has loaded its modules: npm ci may replace them now
	if err != nil {
		t.Fatalf("seamtest: %v", err)
	}
	return f
}

// fakeDir finds test/seamtest above the working directory (go test runs in
// the package's directory).
func fakeDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			fd := filepath.Join(d, "test", "seamtest")
			if _, err := os.Stat(filepath.Join(fd, "server.mjs")); err == nil {
				return fd, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no test/seamtest/server.mjs beside a go.mod above %s", wd)
		}
	}
}

// ensureInstalled runs npm ci when node_modules lacks the pinned fake, and
// says how long that took (0: not needed). It returns holding a shared lock
// on the install, to release once the fake has started, so that no other
// test binary reinstalls under a starting fake.
func ensureInstalled(dir string) (release func(), took time.Duration, err error) {
	lock, err := lockFile(filepath.Join(dir, "node_modules.lock"))
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			lock.unlock()
		}
	}()
	if err := lock.exclusive(); err != nil {
		return nil, 0, err
	}
	want, err := pinnedVersion(dir)
	if err != nil {
		return nil, 0, err
	}
	if got := installedVersion(dir); got != want {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return nil, 0, errors.New("npm is not installed; it is needed once to install Seam's fake (npm ci in test/seamtest)")
		}
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, 0, fmt.Errorf("npm ci in %s: %v\n%s", dir, err, tail(out, 4000))
		}
		if got := installedVersion(dir); got != want {
			return nil, 0, fmt.Errorf("npm ci in %s installed fake version %q, package.json pins %q", dir, got, want)
		}
		took = time.Since(began)
	}
	if err := lock.shared(); err != nil {
		return nil, 0, err
	}
	return lock.unlock, took, nil
}

const pkgName = "@seamapi/fake-seam-connect"

func pinnedVersion(dir string) (string, error) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		return "", fmt.Errorf("read %s/package.json: %w", dir, err)
	}
	v := pkg.Dependencies[pkgName]
	if v == "" {
		return "", fmt.Errorf("%s/package.json does not depend on %s", dir, pkgName)
	}
	return v, nil
}

// installedVersion is the fake's version in node_modules, "" if none.
func installedVersion(dir string) string {
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(pkgName), "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	// npm writes its own record last: without it the install did not finish.
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		return ""
	}
	return pkg.Version
}

var errPortTaken = errors.New("the fake's port was taken before it could bind it")

func start(t testing.TB, node, dir string) (*Fake, error) {
	t.Helper()
	cmd := exec.Command(node, "server.mjs", "0")
	cmd.Dir = dir
	var output logtest.Buffer
	cmd.Stderr = &output
	out := &readyWriter{ready: make(chan *Fake, 1), rest: &output}
	cmd.Stdout = out
	// The fake exits when its stdin closes, so a test binary that dies
	// takes it along.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node server.mjs: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	select {
	case f := <-out.ready:
		f.hc = &http.Client{Timeout: 30 * time.Second}
		t.Logf("seamtest: Seam's fake %s at %s, ready in %v", f.Version, f.URL, time.Since(began).Round(time.Millisecond))
		t.Cleanup(func() {
			t.Helper()
			stop()
			if t.Failed() {
				if s := strings.TrimSpace(output.String()); s != "" {
					t.Logf("seamtest: the fake's output:\n%s", tail([]byte(s), 8000))
				}
			}
		})
		return f, nil
	case <-exited:
		if strings.Contains(output.String(), "EADDRINUSE") {
			// server.mjs picks a free port, then binds it: another
			// process can take it in between.
			return nil, errPortTaken
		}
		return nil, fmt.Errorf("node server.mjs exited before it was ready:\n%s", tail([]byte(output.String()), 4000))
	case <-time.After(readyTimeout):
		stop()
		return nil, fmt.Errorf("node server.mjs not ready after %v:\n%s", readyTimeout, tail([]byte(output.String()), 4000))
	}
}

// readyWriter takes the fake's stdout: it hands the first JSON line with a
// url to ready and passes every other byte on to rest.
type readyWriter struct {
	mu    sync.Mutex
	line  []byte
	found bool
	ready chan *Fake
	rest  io.Writer
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.found {
		return w.rest.Write(p)
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := w.line[:i+1]
		w.line = w.line[i+1:]
		var f Fake
		if bytes.HasPrefix(line, []byte("{")) && json.Unmarshal(line, &f) == nil && f.URL != "" {
			w.found = true
			w.ready <- &f
			_, _ = w.rest.Write(w.line)
			w.line = nil
			return len(p), nil
		}
		_, _ = w.rest.Write(line)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = append([]byte("..."), b[len(b)-n:]...)
	}
	return string(b)
}

// post sends body to path and decodes a 2xx answer into out (if not nil).
// auth adds the API key, for the fake's real API routes.
func (f *Fake) post(ctx context.Context, path string, auth bool, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+f.APIKey)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return fmt.Errorf("seamtest %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("seamtest %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("seamtest %s: %s: %s", path, resp.Status, tail(withoutStack(raw), 1000))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("seamtest %s: %w in %s", path, err, tail(raw, 1000))
		}
	}
	return nil
}

// withoutStack drops the JavaScript stack the fake puts in its errors.
func withoutStack(raw []byte) []byte {
	var v struct {
		Error map[string]any `json:"error"`
	}
	if json.Unmarshal(raw, &v) != nil || v.Error == nil {
		return raw
	}
	delete(v.Error, "stack")
	b, _ := json.Marshal(v)
	return b
}

// AddEvent stores an event in the fake's database, never sent as a webhook,
// for events/list to find. fields must have event_type; workspace_id
// defaults to the seed's, event_id and created_at to the fake's own, and
// occurred_at to created_at. It returns the event as the fake stored it.
func (f *Fake) AddEvent(ctx context.Context, fields map[string]any) (json.RawMessage, error) {
	var out struct {
		Event json.RawMessage `json:"event"`
	}
	err := f.post(ctx, "/_codewatch/add_event", false, fields, &out)
	return out.Event, err
}

// SetDeviceOnline sets a device's properties.online and, as Seam does, adds
// a device_offline error while it is offline.
func (f *Fake) SetDeviceOnline(ctx context.Context, deviceID string, online bool) error {
	return f.post(ctx, "/_codewatch/set_device_online", false, map[string]any{"device_id": deviceID, "online": online}, nil)
}

// AddAccessCode puts a managed access code straight into the fake's
// database: no event, and any fields (status, errors, warnings,
// is_managed...) as given. It returns the new code's id.
func (f *Fake) AddAccessCode(ctx context.Context, deviceID, code string, fields map[string]any) (string, error) {
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	body["device_id"], body["code"] = deviceID, code
	var out struct {
		AccessCode struct {
			ID string `json:"access_code_id"`
		} `json:"access_code"`
	}
	err := f.post(ctx, "/_codewatch/add_access_code", false, body, &out)
	return out.AccessCode.ID, err
}

// UpdateAccessCode replaces the given fields of an access code in the
// fake's database, as a lock's troubles would.
func (f *Fake) UpdateAccessCode(ctx context.Context, accessCodeID string, fields map[string]any) error {
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	body["access_code_id"] = accessCodeID
	return f.post(ctx, "/_codewatch/update_access_code", false, body, nil)
}

// UpdateDevice replaces the given fields of a device in the fake's
// database: display_name, location ({location_name, time_zone}),
// custom_metadata.
func (f *Fake) UpdateDevice(ctx context.Context, deviceID string, fields map[string]any) error {
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	body["device_id"] = deviceID
	return f.post(ctx, "/_codewatch/update_device", false, body, nil)
}

// CreateAccessCode creates a code through the fake's real access_codes/create
// route (which records access_code.created) and returns its id.
func (f *Fake) CreateAccessCode(ctx context.Context, deviceID, code string) (string, error) {
	var out struct {
		AccessCode struct {
			ID string `json:"access_code_id"`
		} `json:"access_code"`
	}
	err := f.post(ctx, "/access_codes/create", true, map[string]string{"device_id": deviceID, "code": code}, &out)
	return out.AccessCode.ID, err
}

// CreateUnmanagedAccessCode puts an unmanaged code on an August lock through
// the fake's access_codes/simulate/create_unmanaged_access_code (code: 4 to
// 8 digits) and returns its id.
func (f *Fake) CreateUnmanagedAccessCode(ctx context.Context, deviceID, name, code string) (string, error) {
	var out struct {
		AccessCode struct {
			ID string `json:"access_code_id"`
		} `json:"access_code"`
	}
	err := f.post(ctx, "/access_codes/simulate/create_unmanaged_access_code", true,
		map[string]string{"device_id": deviceID, "name": name, "code": code}, &out)
	return out.AccessCode.ID, err
}

// ActionAttemptError is the error of a failed action attempt.
type ActionAttemptError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// UpdateActionAttempt sets an action attempt's status through the fake's
// /_fake/update_action_attempt: "pending", "success" (result {}), or
// "error" with e.
func (f *Fake) UpdateActionAttempt(ctx context.Context, id, status string, e *ActionAttemptError) error {
	body := map[string]any{"action_attempt_id": id, "status": status}
	switch status {
	case "success":
		body["result"] = map[string]any{}
	case "error":
		if e == nil {
			return errors.New("seamtest: an error status needs an ActionAttemptError")
		}
		body["error"] = e
	}
	return f.post(ctx, "/_fake/update_action_attempt", false, body, nil)
}

// SimulateWorkspaceOutage makes the given routes (such as
// "/access_codes/get") answer 503 with no body for the seed workspace, through
// the fake's /_fake/simulate_workspace_outage; no routes ends the outage.
func (f *Fake) SimulateWorkspaceOutage(ctx context.Context, routes ...string) error {
	if routes == nil {
		routes = []string{}
	}
	return f.post(ctx, "/_fake/simulate_workspace_outage", false,
		map[string]any{"workspace_id": f.WorkspaceID, "routes": routes}, nil)
}
