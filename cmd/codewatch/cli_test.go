package main

// The command line itself, through the real binary: help and exit codes,
// version, secrets kept out of help, and send's checks.

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

var subcommands = []string{"serve", "migrate", "send", "replay", "quarantine", "rekey", "keys", "version"}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Asking for help is a success: usage on stdout, nothing on stderr, exit 0.
func TestCLIHelpExitsZero(t *testing.T) {
	t.Parallel()
	cases := [][]string{nil, {"help"}, {"--help"}, {"-h"}, {"-help"}}
	for _, c := range subcommands {
		cases = append(cases, []string{c, "-h"}, []string{c, "--help"}, []string{"help", c})
	}
	for _, args := range cases {
		t.Run(strings.Join(append([]string{"codewatch"}, args...), " "), func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, nil, args...)
			if res.Code != 0 {
				t.Errorf("exit %d, want 0; stderr %q", res.Code, res.Stderr)
			}
			if res.Stderr != "" {
				t.Errorf("help wrote to stderr: %q", res.Stderr)
			}
			if !strings.Contains(res.Stdout, "usage:") {
				t.Errorf("stdout has no usage:\n%s", res.Stdout)
			}
			if len(args) > 0 && args[0] != "help" && !strings.HasPrefix(args[0], "-") {
				if !strings.HasPrefix(res.Stdout, "usage: codewatch "+args[0]) {
					t.Errorf("%s -h does not print the command's own usage:\n%s", args[0], res.Stdout)
				}
			}
		})
	}
}

// A mistake on the command line is exit 2 and one line on stderr naming the
// mistake once and where help is; no usage dump, nothing on stdout.
func TestCLIUsageErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string // substrings of the one line
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "run 'codewatch help'"}},
		{[]string{"--frobnicate"}, []string{"-frobnicate", "run 'codewatch help'"}},
		{[]string{"help", "frobnicate"}, []string{`"frobnicate"`, "run 'codewatch help'"}},
		{[]string{"serve", "--no-such-flag"}, []string{"no-such-flag", "run 'codewatch serve -h'"}},
		{[]string{"serve", "extra"}, []string{`unexpected argument "extra"`, "run 'codewatch serve -h'"}},
		{[]string{"serve", "--no-migrate=maybe"}, []string{"no-migrate", "run 'codewatch serve -h'"}},
		{[]string{"migrate", "--no-such-flag"}, []string{"no-such-flag", "run 'codewatch migrate -h'"}},
		{[]string{"migrate"}, []string{"up, down, status", "run 'codewatch migrate -h'"}},
		{[]string{"migrate", "sideways"}, []string{`"sideways"`, "run 'codewatch migrate -h'"}},
		{[]string{"migrate", "up", "down"}, []string{`unexpected argument "down"`, "run 'codewatch migrate -h'"}},
		{[]string{"send", "--no-such-flag"}, []string{"no-such-flag", "run 'codewatch send -h'"}},
		{[]string{"send", "--access-code-id", "x"}, []string{"EVENT_TYPE", "run 'codewatch send -h'"}},
		{[]string{"send", "access_code.deleted", "--secret", newWebhookSecret()}, []string{"--access-code-id", "run 'codewatch send -h'"}},
		{[]string{"replay", "--no-such-flag"}, []string{"no-such-flag", "run 'codewatch replay -h'"}},
		{[]string{"replay", "--batch", "many"}, []string{"batch", "run 'codewatch replay -h'"}},
		{[]string{"quarantine", "--no-such-flag"}, []string{"no-such-flag", "run 'codewatch quarantine -h'"}},
		{[]string{"quarantine"}, []string{"retry", "run 'codewatch quarantine -h'"}},
		{[]string{"quarantine", "forget"}, []string{`"forget"`, "run 'codewatch quarantine -h'"}},
		{[]string{"version", "--no-such-flag"}, []string{"no-such-flag", "run 'codewatch version -h'"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, nil, tc.args...)
			if res.Code != 2 {
				t.Errorf("exit %d, want 2", res.Code)
			}
			if res.Stdout != "" {
				t.Errorf("stdout: %q", res.Stdout)
			}
			ls := lines(res.Stderr)
			if len(ls) != 1 || !strings.HasPrefix(ls[0], "codewatch: ") {
				t.Fatalf("stderr is not one \"codewatch: ...\" line:\n%s", res.Stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(ls[0], w) {
					t.Errorf("%q does not mention %q", ls[0], w)
				}
			}
			if strings.Count(ls[0], tc.want[0]) != 1 {
				t.Errorf("the error is said more than once: %q", ls[0])
			}
			if strings.Contains(res.Stderr, "usage") {
				t.Errorf("a mistake printed the usage: %q", res.Stderr)
			}
		})
	}
}

// Flags may follow a command's argument, as they may precede it.
func TestCLIFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	// No database anywhere: both orders must get as far as looking for one.
	for _, args := range [][]string{{"migrate", "status", "--data-dir", "nowhere"}, {"migrate", "--data-dir", "nowhere", "status"}} {
		res := runCLI(t, nil, args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "no development database under nowhere") {
			t.Errorf("codewatch %s: exit %d, stderr %q", strings.Join(args, " "), res.Code, res.Stderr)
		}
	}
}

// `codewatch version` says what the binary's build information says.
func TestCLIVersion(t *testing.T) {
	t.Parallel()
	bin := codewatchBin(t)
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		res := runCLI(t, nil, args...)
		if res.Code != 0 || res.Stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", args[0], res.Code, res.Stderr)
		}
		checkVersion(t, res.Stdout, bi)
	}
	// The test binary is built from this checkout with this toolchain, which
	// is what the binary under test says too.
	if !strings.Contains(runCLI(t, nil, "version").Stdout, "go: "+runtime.Version()+" ") {
		t.Errorf("version does not name %s", runtime.Version())
	}
}

// checkVersion compares `codewatch version`'s output with the binary's build
// information: whether or not it was built with VCS information (a git
// worktree, -buildvcs=false and go run leave it out).
func checkVersion(t *testing.T, out string, bi *debug.BuildInfo) {
	t.Helper()
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	ls := lines(out)
	if len(ls) < 3 || ls[0] != "codewatch "+bi.Main.Version {
		t.Fatalf("version output:\n%s\nwant first line %q", out, "codewatch "+bi.Main.Version)
	}
	rev := settings["vcs.revision"]
	var want string
	switch {
	case rev == "":
		want = "revision: unknown (built without version control information)"
	case settings["vcs.modified"] == "true":
		want = "revision: " + rev + " (modified: built with uncommitted changes)"
	default:
		want = "revision: " + rev + " (clean)"
	}
	if ls[1] != want {
		t.Errorf("second line %q, want %q", ls[1], want)
	}
	if last := ls[len(ls)-1]; last != fmt.Sprintf("go: %s %s/%s", bi.GoVersion, runtime.GOOS, runtime.GOARCH) {
		t.Errorf("last line %q does not name %s", last, bi.GoVersion)
	}
}

// A build with VCS information prints the commit and whether the tree had
// changes; one without says unknown. (The test binary's own build may have
// either, so both are made here.)
func TestVersionText(t *testing.T) {
	t.Parallel()
	rev := "5935051be37edcc80187473c1c1e4ec709356a8f"
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-11-30T18:57:34Z"}, {Key: "vcs.modified", Value: "true"}},
			"revision: " + rev + " (modified: built with uncommitted changes)\ncommitted: 2026-11-30T18:57:34Z\n"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, "revision: " + rev + " (clean)\n"},
		{nil, "revision: unknown (built without version control information)\n"},
	} {
		bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/codewatch/codewatch", Version: "v1.2.3"}, Settings: tc.settings}
		got := versionText(bi, true)
		want := "codewatch v1.2.3\n" + tc.want + "go: go1.99.1 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
		if got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}
	}
	got := versionText(nil, false)
	want := "codewatch unknown\nrevision: unknown (built without version control information)\ngo: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got != want {
		t.Errorf("without build information:\n%s\nwant:\n%s", got, want)
	}
}

// Help shows where a flag's default comes from but never a secret's value:
// every variable marked secret is set to a marker, and no help, usage
// error or version output may contain one.
func TestCLIHelpNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	markers := map[string]string{}
	var env []string
	for _, v := range config.Vars {
		if !v.Secret {
			continue
		}
		m := "cwmarker" + randomHex(8)
		val := m
		switch {
		case strings.HasSuffix(v.Env, "DATABASE_URL"):
			val = "postgres://codewatch:" + m + "@db.example.com:5432/codewatch"
		case strings.HasSuffix(v.Env, "_URL"):
			val = "https://hooks.example.com/services/" + m
		}
		markers[v.Env] = m
		env = append(env, v.Env+"="+val)
	}
	for _, want := range []string{"DATABASE_URL", "CODEWATCH_MIGRATE_DATABASE_URL", "SEAM_WEBHOOK_SECRET", "CODEWATCH_OPS_TOKEN",
		"CODEWATCH_ALERT_WEBHOOK_SECRET", "CODEWATCH_SLACK_WEBHOOK_URL", "CODEWATCH_ALERT_WEBHOOK_URL", "SEAM_API_KEY", "CODEWATCH_DATA_KEYS", "CODEWATCH_SIGNING_KEY"} {
		if _, ok := markers[want]; !ok {
			t.Errorf("%s is not marked secret in config.Vars", want)
		}
	}
	// A setting that is no secret still shows its value.
	env = append(env, "CODEWATCH_LISTEN=127.0.0.1:18081")

	runs := [][]string{nil, {"help"}, {"-h"}, {"--no-such-flag"}, {"frobnicate"}}
	for _, c := range subcommands {
		runs = append(runs, []string{c, "-h"}, []string{c, "--help"}, []string{"help", c},
			[]string{c, "--no-such-flag"}, []string{c, "-database-url"})
	}
	runs = append(runs, []string{"migrate"}, []string{"send"}, []string{"quarantine"}, []string{"serve", "extra"})
	var serveHelp string
	for _, args := range runs {
		res := runCLI(t, env, args...)
		out := res.Stdout + res.Stderr
		for k, m := range markers {
			if strings.Contains(out, m) {
				t.Errorf("codewatch %s printed the value of %s:\n%s", strings.Join(args, " "), k, out)
			}
		}
		if len(args) == 2 && args[0] == "serve" && args[1] == "-h" {
			serveHelp = res.Stdout
		}
	}
	if !strings.Contains(serveHelp, "127.0.0.1:18081") {
		t.Errorf("serve -h hides CODEWATCH_LISTEN, which is no secret:\n%s", serveHelp)
	}
	for _, f := range []string{"-database-url", "-webhook-secret", "-ops-token", "-slack-webhook-url"} {
		i := strings.Index(serveHelp, "  "+f+" ")
		if i < 0 {
			t.Fatalf("serve -h lacks %s:\n%s", f, serveHelp)
		}
		entry, _, _ := strings.Cut(serveHelp[i+3:], "\n  -")
		if !strings.Contains(entry, "(set)") {
			t.Errorf("serve -h does not say %s is set: %q", f, entry)
		}
	}
}

// sendRecorder is a webhook endpoint that checks each delivery's signature
// as codewatch does and keeps the events.
type sendRecorder struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	events []map[string]any
}

func newSendRecorder(t *testing.T) *sendRecorder {
	t.Helper()
	r := &sendRecorder{secret: newWebhookSecret()}
	v, err := verify.New([]string{r.secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if _, err := v.Verify(body, req.Header); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *sendRecorder) got() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.events...)
}

// send runs `codewatch send args... --url R --secret S`.
func (r *sendRecorder) send(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, nil, append(append([]string{"send"}, args...), "--url", r.srv.URL, "--secret", r.secret)...)
}

// A type Seam does not have is refused before anything is sent, with the
// nearest real type; --force sends it all the same.
func TestCLISendRefusesUnknownEventTypes(t *testing.T) {
	t.Parallel()
	rec := newSendRecorder(t)
	code := seamevent.NewID()
	for _, tc := range []struct{ typo, closest string }{
		{"access_code.delted", "access_code.deleted"},
		{"access_code.removed_from_devise", "access_code.removed_from_device"},
		{"lock.unlockd", "lock.unlocked"},
		{"access_code.deleted ", "access_code.deleted"},
	} {
		res := rec.send(t, tc.typo, "--access-code-id", code)
		ls := lines(res.Stderr)
		if res.Code != 2 || len(ls) != 1 || res.Stdout != "" {
			t.Errorf("send %q: exit %d, stdout %q, stderr %q; want exit 2 and one line", tc.typo, res.Code, res.Stdout, res.Stderr)
			continue
		}
		for _, w := range []string{fmt.Sprintf("%q", tc.typo), "did you mean " + tc.closest + "?", "--force"} {
			if !strings.Contains(ls[0], w) {
				t.Errorf("send %q: %q does not mention %q", tc.typo, ls[0], w)
			}
		}
	}
	if n := len(rec.got()); n != 0 {
		t.Fatalf("%d refused events were sent anyway", n)
	}

	for _, args := range [][]string{
		{"access_code.delted", "--access-code-id", code, "--force"},
		{"--force", "access_code.delted", "--access-code-id", code},
	} {
		if res := rec.send(t, args...); res.Code != 0 {
			t.Fatalf("send %v: exit %d, stderr %q", args, res.Code, res.Stderr)
		}
	}
	got := rec.got()
	if len(got) != 2 || got[0]["event_type"] != "access_code.delted" || got[1]["event_type"] != "access_code.delted" {
		t.Fatalf("with --force: got %v", got)
	}
	// Every type on Seam's list goes through without --force.
	if res := rec.send(t, "access_code.backup_access_code_pulled", "--access-code-id", code); res.Code != 0 {
		t.Fatalf("a known type was refused: %q", res.Stderr)
	}
}

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Without --device-id, every event sent for a code names the same device,
// and different codes different devices: sending never moves a code to one
// shared example lock.
func TestCLISendKeepsACodesDevice(t *testing.T) {
	t.Parallel()
	rec := newSendRecorder(t)
	a, b := seamevent.NewID(), seamevent.NewID()
	for _, s := range [][]string{
		{"access_code.set_on_device", a},
		{"access_code.set_on_device", b},
		{"access_code.deleted", a},
		{"lock.unlocked", a},
		{"access_code.removed_from_device", a},
	} {
		if res := rec.send(t, s[0], "--access-code-id", s[1]); res.Code != 0 {
			t.Fatalf("send %v: exit %d, stderr %q", s, res.Code, res.Stderr)
		}
	}
	got := rec.got()
	devA, devB := got[0]["device_id"], got[1]["device_id"]
	for i, ev := range got {
		want := devA
		if ev["access_code_id"] == b {
			want = devB
		}
		if ev["device_id"] != want {
			t.Errorf("event %d (%s for %s) names device %v, the code's first event %v", i, ev["event_type"], ev["access_code_id"], ev["device_id"], want)
		}
	}
	if devA == devB {
		t.Errorf("two codes were put on the same device %v", devA)
	}
	for _, d := range []any{devA, devB} {
		s, _ := d.(string)
		if !uuidShape.MatchString(s) {
			t.Errorf("device id %q is not shaped like Seam's ids", s)
		}
	}
	// The device is the code's own, whichever process sends.
	if devA != seamevent.DeviceIDFor(a) {
		t.Errorf("device %v, want DeviceIDFor(code) %s", devA, seamevent.DeviceIDFor(a))
	}
	// An explicit device wins.
	const dev = "0e3a4a36-77a9-4f45-9a43-4cbd0f3f0a5c"
	if res := rec.send(t, "access_code.deleted", "--access-code-id", a, "--device-id", dev); res.Code != 0 {
		t.Fatalf("send --device-id: %q", res.Stderr)
	}
	if got := rec.got(); got[len(got)-1]["device_id"] != dev {
		t.Errorf("--device-id ignored: %v", got[len(got)-1]["device_id"])
	}
}
