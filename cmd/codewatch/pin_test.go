package main

// The proof for issue 14 ("Door codes are secrets"): a PIN that went in
// through every path codewatch has comes out of none of them in clear.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/otlptest"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/seamtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/proof"
	"github.com/codewatch/codewatch/seamevent"
)

// proofPIN is the PIN every event of the proof carries: 8 digits, so that
// no hex dump or random id contains it by chance.
const proofPIN = "91827364"

// pinLeaks lists the forms in which the PIN would be readable in out:
// as text, and as the hex pg_dump and Postgres print bytea in.
func pinLeaks(out []byte) []string {
	var found []string
	for name, form := range map[string]string{
		"in clear":  proofPIN,
		"hex-coded": hex.EncodeToString([]byte(proofPIN)),
		"HEX-CODED": strings.ToUpper(hex.EncodeToString([]byte(proofPIN))),
	} {
		if bytes.Contains(out, []byte(form)) {
			found = append(found, name)
		}
	}
	return found
}

// pinProof is the running service the paths drive, and everything it has
// shown anyone so far.
type pinProof struct {
	t       *testing.T
	db      string
	env     serveEnv
	keys    *datakeys.Keyring
	s       *server
	sender  *seamevent.Sender
	webhook *rawSink
	slack   *rawSink
	// oncall plays PagerDuty, Opsgenie and Teams (issue 23), by path.
	oncall *rawSink
	fake   *seamtest.Fake

	mu      sync.Mutex
	outputs []pinOutput
	// codes are the access codes the paths made, by what they are for.
	codes map[string]string
}

// pinOutput is something codewatch produced for the outside world: an API
// answer, a command's output, an alert as a sink received it, a log, a dump.
type pinOutput struct {
	path, what string
	data       []byte
}

func (p *pinProof) record(path, what string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outputs = append(p.outputs, pinOutput{path: path, what: what, data: append([]byte(nil), data...)})
}

// pinPath is one way a PIN goes into codewatch or comes out of it. run
// drives it against the running service and records (p.record) every byte
// codewatch answers or prints on the way; the proof then scans all of it,
// together with what the sinks received, the service's log and a pg_dump.
//
// More paths go here as codewatch grows them: one entry each, in the order
// they can run.
type pinPath struct {
	name string
	run  func(t *testing.T, p *pinProof)
}

var pinPaths = []pinPath{
	{"signed webhooks", pinWebhooks},
	{"quarantine", pinQuarantine},
	{"alerts", pinAlerts},
	{"ops API", pinOpsAPI},
	{"lock evidence", pinLockEvidence},
	{"Seam API", pinSeamAPI},
	{"deletion record", pinDeletionRecord},
	{"console", pinConsole},
	{"quarantine retry", pinQuarantineRetry},
	{"replay", pinReplay},
	{"rekey", pinRekey},
	{"metrics", pinMetrics},
}

func TestPINNeverInClear(t *testing.T) {
	t.Parallel()
	p := &pinProof{t: t, db: pgtest.NewURL(t), codes: map[string]string{}}
	p.webhook, p.slack = newRawSink(t), newRawSink(t)
	p.env = newServeEnv(t, p.db)
	p.env["CODEWATCH_LOG_LEVEL"] = "debug" // everything the service would ever log
	p.env["CODEWATCH_REMOVAL_TIMEOUT"] = "1s"
	p.env["CODEWATCH_SWEEP_INTERVAL"] = "200ms"
	p.env["CODEWATCH_ALERT_REPEAT"] = "1s"
	alertSecret := newWebhookSecret()
	p.env["CODEWATCH_ALERT_WEBHOOK_URL"] = p.webhook.srv.URL + "/alerts"
	p.env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = alertSecret
	p.env["CODEWATCH_SLACK_WEBHOOK_URL"] = p.slack.srv.URL + "/services/T0/B0/x"
	p.oncall = newRawSink(t)
	p.env["CODEWATCH_PAGERDUTY_ROUTING_KEY"] = "R0UT1NGK3Y0123456789abcdefABCDEF"
	p.env["CODEWATCH_PAGERDUTY_URL"] = p.oncall.srv.URL + "/pagerduty/v2/enqueue"
	p.env["CODEWATCH_OPSGENIE_API_KEY"] = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
	p.env["CODEWATCH_OPSGENIE_URL"] = p.oncall.srv.URL + "/opsgenie"
	p.env["CODEWATCH_TEAMS_WEBHOOK_URL"] = p.oncall.srv.URL + "/teams/workflow?sig=x"
	var err error
	if p.keys, err = datakeys.Parse(p.env["CODEWATCH_DATA_KEYS"]); err != nil {
		t.Fatal(err)
	}
	p.fake = seamtest.Start(t)
	for k, v := range seamEnvFor(p.fake) {
		p.env[k] = v
	}
	p.env["CODEWATCH_RECONCILE_AFTER"] = "0" // lookups only when asked
	// Tracing on (issue 24): every span exported is searched too.
	spans := otlptest.Start(t)
	traceEnv(p.env, spans)
	signing, _, err := proof.Generate("pin1")
	if err != nil {
		t.Fatal(err)
	}
	p.env["CODEWATCH_SIGNING_KEY"] = signing
	p.s = startServer(t, "serve", p.env)
	p.sender = &seamevent.Sender{URL: p.s.webhookURL(), Secret: p.s.Secret}

	// Every path runs even when one fails, so that every leak is reported.
	for _, path := range pinPaths {
		t.Run(path.name, func(t *testing.T) { path.run(t, p) })
	}
	if code, _ := p.s.stop(15 * time.Second); code != 0 {
		t.Errorf("serve exited %d", code)
	}
	// What every run of the service leaves: the log, the alerts, the
	// database.
	p.record("service", "log (debug level)", []byte(p.s.logs()))
	if out := p.s.stdout.String(); out != "" {
		p.record("service", "stdout", []byte(out))
	}
	for i, b := range p.webhook.bodies() {
		p.record("alerts", fmt.Sprintf("webhook sink request %d", i+1), b)
	}
	for i, b := range p.slack.bodies() {
		p.record("alerts", fmt.Sprintf("slack sink request %d", i+1), b)
	}
	for i, b := range p.oncall.bodies() {
		p.record("alerts", fmt.Sprintf("on-call sink request %d", i+1), b)
	}
	p.record("database", "pg_dump", pgDump(t, p.db))
	exported := bytes.Join(spans.Raw(), nil)
	p.record("traces", "spans exported over OTLP", exported)
	// Nor a secret: the console's sign-in, the ops API and Seam's API ran
	// traced.
	for what, secret := range map[string]string{"the ops token": p.s.Token, "the webhook secret": strings.TrimPrefix(p.s.Secret, "whsec_"),
		"the alert webhook secret": strings.TrimPrefix(alertSecret, "whsec_"), "the Seam API key": p.env["SEAM_API_KEY"],
		"the data key": p.env["CODEWATCH_DATA_KEYS"]} {
		if bytes.Contains(exported, []byte(secret)) {
			t.Errorf("the exported spans show %s", what)
		}
	}

	// The PIN went in: the stored bodies hold it, the API showed its hint.
	// (Otherwise finding it nowhere would prove nothing.) And the scan
	// finds it where it is.
	checkPINStored(t, p)
	if len(pinLeaks(proofEvent(t, lifecycle.TypeSetOnDevice, "c", time.Now(), nil))) == 0 ||
		len(pinLeaks([]byte(`\x`+hex.EncodeToString([]byte(`{"code":"`+proofPIN+`"}`))))) == 0 {
		t.Fatal("the scan does not find the PIN in a body that has it")
	}
	if len(p.webhook.bodies()) == 0 || len(p.slack.bodies()) == 0 {
		t.Errorf("alerts reached the webhook sink %d times and Slack %d times: the alert paths were not exercised",
			len(p.webhook.bodies()), len(p.slack.bodies()))
	}
	for _, prefix := range []string{"/pagerduty/", "/opsgenie/", "/teams/"} {
		if !slices.ContainsFunc(p.oncall.bodies(), func(b []byte) bool { return bytes.HasPrefix(b, []byte(prefix)) }) {
			t.Errorf("no alert reached %s: the on-call paths were not exercised", prefix)
		}
	}
	for _, o := range p.outputs {
		if len(o.data) == 0 {
			t.Errorf("%s: %s is empty: nothing was checked", o.path, o.what)
		}
		if leaks := pinLeaks(o.data); len(leaks) > 0 {
			i := bytes.Index(o.data, []byte(proofPIN))
			ctx := ""
			if i >= 0 {
				ctx = string(o.data[max(0, i-120):min(len(o.data), i+40)])
			}
			t.Errorf("%s: %s shows the PIN %s: ...%s...", o.path, o.what, strings.Join(leaks, ", "), ctx)
		}
	}
	t.Logf("checked %d outputs for the PIN", len(p.outputs))
}

// send posts a signed event and records codewatch's answer.
func (p *pinProof) send(t *testing.T, path, msgID string, body []byte) []byte {
	t.Helper()
	rep, err := p.sender.Send(context.Background(), msgID, body)
	if err != nil || rep.Status != http.StatusOK {
		t.Fatalf("send %s: %v %d %s", msgID, err, rep.Status, rep.Body)
	}
	p.record(path, "webhook answer to "+msgID, rep.Body)
	return rep.Body
}

func proofEvent(t *testing.T, typ, code string, at time.Time, extra map[string]any) []byte {
	t.Helper()
	b, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, Code: proofPIN, OccurredAt: at,
		DeviceID: seamevent.DeviceIDFor(code)})
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) == 0 {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ = json.Marshal(m)
	return b
}

// pinWebhooks: a code programmed with the PIN, a lock used with it, and a
// deletion that fails with Seam's error carrying the PIN too (as a field of
// the error, where Seam could put it): the failure raises an alert at once.
func pinWebhooks(t *testing.T, p *pinProof) {
	code := seamevent.NewID()
	p.codes["failed"] = code
	now := time.Now().Add(-time.Minute)
	p.send(t, "signed webhooks", seamevent.NewMessageID(), proofEvent(t, lifecycle.TypeSetOnDevice, code, now, nil))
	p.send(t, "signed webhooks", seamevent.NewMessageID(), proofEvent(t, "lock.unlocked", code, now.Add(time.Second), nil))
	fail := proofEvent(t, "access_code.failed_to_remove_from_device", code, now.Add(3*time.Second), map[string]any{
		"code": proofPIN,
		"access_code_errors": []map[string]any{{"error_code": "failed_to_remove_from_device", "created_at": now.Format(time.RFC3339),
			"message": "Failed to remove code from device.", "code": proofPIN}},
	})
	p.send(t, "signed webhooks", seamevent.NewMessageID(), fail)
	msg := seamevent.NewMessageID()
	deleted := proofEvent(t, lifecycle.TypeDeleted, code, now.Add(2*time.Second), nil)
	p.send(t, "signed webhooks", msg, deleted)
	// Svix's retry of it: a duplicate, decided by comparing stored bodies.
	if b := p.send(t, "signed webhooks", msg, deleted); !bytes.Contains(b, []byte(`"duplicate":true`)) {
		t.Errorf("a retry: %s", b)
	}
	p.codes["deleted_msg"] = msg
	// A code deleted and never confirmed: overdue, then reminded.
	overdue := seamevent.NewID()
	p.codes["overdue"] = overdue
	p.send(t, "signed webhooks", seamevent.NewMessageID(), proofEvent(t, lifecycle.TypeSetOnDevice, overdue, now, nil))
	p.send(t, "signed webhooks", seamevent.NewMessageID(), proofEvent(t, lifecycle.TypeDeleted, overdue, now.Add(time.Second), nil))
}

// pinQuarantine: a body codewatch cannot use, carrying the PIN; and a
// second body signed under a message id already used (kept in quarantine).
func pinQuarantine(t *testing.T, p *pinProof) {
	noID := []byte(`{"event_id":"` + seamevent.NewID() + `","event_type":"access_code.set_on_device","code":"` + proofPIN + `"}`)
	if b := p.send(t, "quarantine", seamevent.NewMessageID(), noID); !bytes.Contains(b, []byte(`"quarantined":true`)) {
		t.Errorf("an event without its access_code_id: %s", b)
	}
	reused := proofEvent(t, lifecycle.TypeRemovedFromDevice, p.codes["failed"], time.Now(), map[string]any{"code": proofPIN})
	if b := p.send(t, "quarantine", p.codes["deleted_msg"], reused); !bytes.Contains(b, []byte(`"quarantined":true`)) {
		t.Errorf("a message id reused: %s", b)
	}
}

// pinAlerts: the failure's alert and the overdue code's alert and reminder
// reach every sink (webhook, Slack, log); acknowledging sends a resolution.
func pinAlerts(t *testing.T, p *pinProof) {
	waitFor(t, 20*time.Second, "trouble and a reminder at both sinks", func() bool {
		return len(p.webhook.bodies()) >= 3 && len(p.slack.bodies()) >= 3
	})
	var out json.RawMessage
	st := p.s.api(http.MethodPost, "/v1/access_codes/"+p.codes["failed"]+"/acknowledge", p.s.Token,
		map[string]string{"note": "checked the lock"}, &out)
	if st != http.StatusOK {
		t.Fatalf("acknowledge: %d %s", st, out)
	}
	p.record("alerts", "acknowledge answer", out)
	waitFor(t, 20*time.Second, "the resolution at both sinks", func() bool {
		return bytes.Contains(bytes.Join(p.webhook.bodies(), nil), []byte(`"deletion.resolved"`)) &&
			bytes.Contains(bytes.Join(p.slack.bodies(), nil), []byte(":white_check_mark:"))
	})
}

// pinOpsAPI: every read route, and the status page.
func pinOpsAPI(t *testing.T, p *pinProof) {
	get := func(path string) []byte {
		t.Helper()
		var out json.RawMessage
		if st := p.s.api(http.MethodGet, path, p.s.Token, nil, &out); st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, st, out)
		}
		p.record("ops API", "GET "+path, out)
		return out
	}
	code := get("/v1/access_codes/" + p.codes["failed"])
	// People tell codes apart by the hint, never the PIN.
	if !bytes.Contains(code, []byte(`"pin_hint":"••64"`)) {
		t.Errorf("the code shows no PIN hint: %s", code)
	}
	get("/v1/access_codes/" + p.codes["overdue"])
	get("/v1/access_codes")
	get("/v1/access_codes?sort=recent")
	get("/v1/access_codes?needs_troubleshooting=true")
	// Searches by name (issue 22): names shown with the codes they find.
	get("/v1/access_codes?q=e")
	get("/v1/devices?q=e")
	// The deletions export (issue 22), both formats.
	for _, path := range []string{"/v1/exports/deletions", "/v1/exports/deletions?format=jsonl"} {
		req, _ := http.NewRequest(http.MethodGet, p.s.Ops+path, nil)
		req.Header.Set("Authorization", "Bearer "+p.s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		p.record("ops API", "GET "+path, b)
	}
	get("/v1/summary")
	q := get("/v1/quarantine")
	if !bytes.Contains(q, []byte(`••64`)) {
		t.Errorf("quarantined bodies are not shown masked: %s", q)
	}
	resp, err := http.Get(p.s.Ops + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.record("ops API", "status page", page)
}

// cliEnv is the environment the CLI paths run with: serve's database and
// keys.
func (p *pinProof) cliEnv(keys string) []string {
	return []string{"DATABASE_URL=" + p.db, "CODEWATCH_DATA_KEYS=" + keys, "CODEWATCH_LOG_LEVEL=debug"}
}

func (p *pinProof) cli(t *testing.T, path string, keys string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, p.cliEnv(keys), args...)
	p.record(path, "codewatch "+strings.Join(args, " ")+" stdout", []byte(res.Stdout+"\n"))
	if res.Stderr != "" {
		p.record(path, "codewatch "+strings.Join(args, " ")+" stderr", []byte(res.Stderr))
	}
	if res.Code != 0 {
		t.Fatalf("codewatch %s: exit %d\n%s%s", strings.Join(args, " "), res.Code, res.Stdout, res.Stderr)
	}
	return res
}

// pinQuarantineRetry: the body kept under the reused message id is stored
// as an event by `codewatch quarantine retry`, read from its sealed row and
// sealed again as an event.
func pinQuarantineRetry(t *testing.T, p *pinProof) {
	res := p.cli(t, "quarantine retry", p.env["CODEWATCH_DATA_KEYS"], "quarantine", "retry")
	if !strings.Contains(res.Stdout, "done: 1 stored") {
		t.Errorf("quarantine retry: %s", res.Stdout)
	}
}

func pinReplay(t *testing.T, p *pinProof) {
	p.cli(t, "replay", p.env["CODEWATCH_DATA_KEYS"], "replay")
}

// pinRekey: rotation to a new key while the service runs.
func pinRekey(t *testing.T, p *pinProof) {
	k2 := newDataKey(t, "k2")
	res := p.cli(t, "rekey", k2+","+p.env["CODEWATCH_DATA_KEYS"], "rekey")
	if !strings.Contains(res.Stdout, "may be removed") {
		t.Errorf("rekey: %s", res.Stdout)
	}
	if p.keys, _ = datakeys.Parse(k2); p.keys == nil {
		t.Fatal("k2 does not parse")
	}
}

func pinMetrics(t *testing.T, p *pinProof) {
	resp, err := http.Get(p.s.Ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.record("metrics", "GET /metrics", b)
}

// checkPINStored opens every stored body with the keys: the PIN is in them
// (it went in, sealed), and in no other column.
func checkPINStored(t *testing.T, p *pinProof) {
	t.Helper()
	conn := dbConn(t, p.db)
	withPIN := 0
	for _, table := range []string{"events", "quarantine"} {
		rs, err := conn.Query(context.Background(), `SELECT message_id, key_id, raw FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var msg string
			var keyID *string
			var raw []byte
			if err := rs.Scan(&msg, &keyID, &raw); err != nil {
				t.Fatal(err)
			}
			body, err := postgres.OpenBody(p.keys, table, msg, keyID, raw)
			if err != nil {
				t.Errorf("%s %s does not open with the key after rekey: %v", table, msg, err)
			}
			if bytes.Contains(body, []byte(proofPIN)) {
				withPIN++
			}
		}
		rs.Close()
	}
	if withPIN < 8 {
		t.Errorf("%d stored bodies hold the PIN: the paths did not store what they sent", withPIN)
	}
}

// pgDump dumps the whole database as plain SQL, as a backup would.
func pgDump(t *testing.T, db string) []byte {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		if len(matches) == 0 {
			t.Fatal("pg_dump not found (PostgreSQL's client programs are needed)")
		}
		bin = matches[len(matches)-1]
	}
	cmd := exec.Command(bin, "--no-password", "--dbname="+db)
	cmd.Env = os.Environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, errb.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("COPY public.events")) {
		t.Fatalf("pg_dump has no events table:\n%s", tail(out.String(), 2000))
	}
	return out.Bytes()
}

// rawSink records every request body it receives and answers 200.
type rawSink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got [][]byte
}

func newRawSink(t *testing.T) *rawSink {
	t.Helper()
	r := &rawSink{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var h bytes.Buffer
		_ = req.Header.Write(&h)
		r.mu.Lock()
		r.got = append(r.got, append(append([]byte(req.URL.String()+"\n"), h.Bytes()...), b...))
		r.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rawSink) bodies() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

// pinLockEvidence: the deleted overdue code's PIN used at its lock with no
// access_code_id (matched on keyed hashes), and refused there: a critical
// alert to every sink, the code and its lock in the API.
func pinLockEvidence(t *testing.T, p *pinProof) {
	code := p.codes["overdue"]
	// The PIN given again, to a live code on the same lock: the unlock may
	// have been it, and the deleted code's trouble names it (by id).
	live := seamevent.NewID()
	p.send(t, "lock evidence", seamevent.NewMessageID(), proofEvent(t, lifecycle.TypeSetOnDevice, live, time.Now().Add(-30*time.Second),
		map[string]any{"device_id": seamevent.DeviceIDFor(code)}))
	unlock := proofEvent(t, lifecycle.TypeLockUnlocked, code, time.Now(), map[string]any{"method": "keycode"})
	var m map[string]any
	_ = json.Unmarshal(unlock, &m)
	delete(m, "access_code_id")
	unlock, _ = json.Marshal(m)
	p.send(t, "lock evidence", seamevent.NewMessageID(), unlock)
	p.send(t, "lock evidence", seamevent.NewMessageID(), proofEvent(t, lifecycle.TypeLockAccessDenied, code, time.Now(), nil))
	var out json.RawMessage
	p.s.api(http.MethodGet, "/v1/access_codes/"+code, p.s.Token, nil, &out)
	p.record("lock evidence", "the used code", out)
	if !bytes.Contains(out, []byte(`"troubleshooting_reason":"used_after_deletion"`)) ||
		!bytes.Contains(out, []byte(`"live_codes_with_same_pin":["`+live+`"]`)) {
		t.Fatalf("the unlock by PIN was not matched, naming the live code with the same PIN: %s", out)
	}
	p.s.api(http.MethodGet, "/v1/devices/"+seamevent.DeviceIDFor(code), p.s.Token, nil, &out)
	p.record("lock evidence", "its lock", out)
	defer func() {
		if t.Failed() {
			for _, b := range p.webhook.bodies() {
				if i := bytes.IndexByte(b, '{'); i >= 0 {
					b = b[i:]
				}
				t.Logf("webhook sink: %.400s", b)
			}
		}
	}()
	waitFor(t, 20*time.Second, "the critical alert at both sinks", func() bool {
		return regexp.MustCompile(`"severity":\s*"critical"`).Match(bytes.Join(p.webhook.bodies(), nil)) &&
			bytes.Contains(bytes.Join(p.slack.bodies(), nil), []byte("CRITICAL"))
	})
}

// pinSeamAPI: events read back from Seam's API (backfill), a deletion
// requested and a lookup that reads the lock's unmanaged codes, all with the
// PIN in what Seam answers.
func pinSeamAPI(t *testing.T, p *pinProof) {
	ctx := context.Background()
	dev := p.fake.Devices[0]
	env := append(p.cliEnv(p.env["CODEWATCH_DATA_KEYS"]), envList(seamEnvFor(p.fake))...)
	run := func(args ...string) cliResult {
		t.Helper()
		res := runCLI(t, env, args...)
		p.record("Seam API", "codewatch "+strings.Join(args, " "), []byte(res.Stdout+res.Stderr))
		if res.Code != 0 {
			t.Fatalf("codewatch %s: exit %d\n%s%s", strings.Join(args, " "), res.Code, res.Stdout, res.Stderr)
		}
		return res
	}
	// A code Seam has, with the PIN: its events backfilled, then deleted.
	code, err := p.fake.CreateAccessCode(ctx, dev, proofPIN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.fake.AddEvent(ctx, map[string]any{"event_type": lifecycle.TypeSetOnDevice, "access_code_id": code,
		"device_id": dev, "code": proofPIN}); err != nil {
		t.Fatal(err)
	}
	run("backfill", "--since", "1h")
	run("delete", code)
	run("backfill", "--since", "1h") // Seam's access_code.deleted, with the PIN
	// The lock kept the PIN as an unmanaged code; the lookup finds it.
	if _, err := p.fake.CreateUnmanagedAccessCode(ctx, dev, "kept", proofPIN); err != nil {
		t.Fatal(err)
	}
	run("reconcile", code)
	var out json.RawMessage
	p.s.api(http.MethodGet, "/v1/access_codes/"+code, p.s.Token, nil, &out)
	p.record("Seam API", "the code after the lookup", out)
	if !bytes.Contains(out, []byte(`"troubleshooting_reason":"still_on_lock"`)) {
		t.Fatalf("the PIN among the unmanaged codes was not found: %s", out)
	}
	p.codes["seam"] = code
}

// pinConsole: every console page a person can open, signed in.
func pinConsole(t *testing.T, p *pinProof) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) []byte {
		t.Helper()
		resp, err := c.Get(p.s.Ops + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		p.record("console", "GET "+path, b)
		return b
	}
	signin := get("/console/signin")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(signin)
	if m == nil {
		t.Fatalf("no CSRF field on the sign-in page")
	}
	resp, err := c.PostForm(p.s.Ops+"/console/signin", url.Values{"csrf": {string(m[1])}, "token": {p.s.Token}, "next": {"/console/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	for _, path := range []string{"/console/", "/console/codes", "/console/codes?sort=recent", "/console/quarantine",
		"/console/alerts", "/console/locks",
		"/console/codes/" + p.codes["failed"], "/console/codes/" + p.codes["overdue"], "/console/codes/" + p.codes["seam"],
		"/console/locks/" + seamevent.DeviceIDFor(p.codes["overdue"]),
		// River's job UI and the jobs' arguments it shows (issue 24).
		"/console/jobs/", "/console/jobs/api/jobs?state=completed&limit=100", "/console/jobs/api/jobs?state=retryable&limit=100",
		"/console/jobs/api/jobs?state=available&limit=100", "/console/jobs/api/queues"} {
		get(path)
	}
	// The raw JSON is one click away, masked: the hint, never the PIN.
	if page := get("/console/codes/" + p.codes["overdue"]); !bytes.Contains(page, []byte("••64")) {
		t.Errorf("the code's page shows no masked body")
	}
}
