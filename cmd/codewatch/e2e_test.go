package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/seamevent"
)

// cliSender drives a server with `codewatch send`, as a user would, and
// remembers every body and message id it sent.
type cliSender struct {
	t      *testing.T
	s      *server
	mu     sync.Mutex
	bodies []string
	msgIDs []string
}

// send runs `codewatch send eventType --access-code-id code extra...` and
// requires a 2xx answer.
func (c *cliSender) send(eventType, code string, extra ...string) {
	c.t.Helper()
	args := append([]string{"send", eventType, "--access-code-id", code, "--url", c.s.webhookURL(), "--secret", c.s.Secret}, extra...)
	res := runCLI(c.t, nil, args...)
	if res.Code != 0 {
		c.t.Fatalf("codewatch send %s: exit %d\nstdout: %s\nstderr: %s", eventType, res.Code, res.Stdout, res.Stderr)
	}
	// POST URL / svix-id: ID / BODY / (blank) / STATUS REPLY
	lines := strings.Split(strings.TrimRight(res.Stdout, "\n"), "\n")
	if len(lines) < 5 || !strings.HasPrefix(lines[1], "svix-id: msg_") || !strings.HasPrefix(lines[2], "{") ||
		!strings.HasPrefix(lines[len(lines)-1], "200 ") {
		c.t.Fatalf("codewatch send %s: unexpected output:\n%s", eventType, res.Stdout)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &ev); err != nil || ev["event_type"] != eventType || ev["access_code_id"] != code {
		c.t.Fatalf("codewatch send printed body %s (%v)", lines[2], err)
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, lines[2])
	c.msgIDs = append(c.msgIDs, strings.TrimPrefix(lines[1], "svix-id: "))
	c.mu.Unlock()
}

func alertTypes(as []sinkAlert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Type + "/" + a.Reason
	}
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ptrTime(p *time.Time) string {
	if p == nil {
		return "<nil>"
	}
	return p.UTC().Format(time.RFC3339Nano)
}

func TestE2EDeletionLifecycle(t *testing.T) {
	t.Parallel()
	db := pgtest.NewURL(t)
	alertSecret := newWebhookSecret()
	hooks := newWebhookRecorder(t, alertSecret)
	slackPath := "/services/T0CW/B0CW/" + randomHex(12)
	slack := newSlackRecorder(t, slackPath)

	env := newServeEnv(t, db)
	env["CODEWATCH_REMOVAL_TIMEOUT"] = "2s"
	env["CODEWATCH_SWEEP_INTERVAL"] = "200ms"
	env["CODEWATCH_ALERT_WEBHOOK_URL"] = hooks.URL() + "/codewatch-alerts"
	env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = alertSecret
	env["CODEWATCH_SLACK_WEBHOOK_URL"] = slack.URL() + slackPath
	s := startServer(t, "serve", env)
	c := &cliSender{t: t, s: s}
	sinks := map[string]*alertRecorder{"webhook": hooks, "slack": slack}

	// The code the whole story follows: programmed, deleted, never
	// confirmed off the lock within the timeout, then confirmed.
	code := seamevent.NewID()
	c.send("access_code.set_on_device", code)
	deletedAt := time.Now()
	c.send("access_code.deleted", code)
	got := s.code(code)
	if got.DeletionState != lifecycle.AwaitingRemoval || got.OnDevice == nil || !*got.OnDevice {
		t.Fatalf("after set_on_device and deleted: state %s, on_device %v; want awaiting_removal, true", got.DeletionState, got.OnDevice)
	}
	if got.NeedsTroubleshooting && time.Since(deletedAt) < 1500*time.Millisecond {
		t.Errorf("needs troubleshooting %s after the deletion, before the 2s removal timeout", time.Since(deletedAt))
	}
	if len(got.Events) != 2 || got.Events[0].EventType != lifecycle.TypeSetOnDevice || got.Events[1].EventType != lifecycle.TypeDeleted {
		t.Errorf("history: %+v", got.Events)
	}

	t.Run("ops API needs the token", func(t *testing.T) {
		var e struct {
			Error struct{ Type, Message string } `json:"error"`
			OK    bool                           `json:"ok"`
		}
		if st := s.api(http.MethodGet, "/v1/access_codes/"+code, "", nil, &e); st != http.StatusUnauthorized || e.OK || e.Error.Type != "unauthorized" {
			t.Errorf("no token: %d %+v", st, e)
		}
		if st := s.api(http.MethodGet, "/v1/access_codes/"+code, "not-the-token-0123456789", nil, nil); st != http.StatusUnauthorized {
			t.Errorf("wrong token: %d", st)
		}
		if st := s.api(http.MethodGet, "/v1/summary", "", nil, nil); st != http.StatusUnauthorized {
			t.Errorf("summary without token: %d", st)
		}
		if st := s.api(http.MethodPost, "/v1/access_codes/"+code+"/acknowledge", "", map[string]string{"note": "x"}, nil); st != http.StatusUnauthorized {
			t.Errorf("acknowledge without token: %d", st)
		}
		if st := s.api(http.MethodGet, "/v1/access_codes/"+seamevent.NewID(), s.Token, nil, &e); st != http.StatusNotFound || e.Error.Type != "access_code_not_found" {
			t.Errorf("unknown code: %d %+v", st, e)
		}
	})

	// Delivered out of order: the removal arrives first, the deletion it
	// confirms next, the programming last.
	ooo := seamevent.NewID()
	base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	at := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339Nano) }
	c.send("access_code.removed_from_device", ooo, "--occurred-at", at(2*time.Second))
	if st := s.code(ooo).DeletionState; st != lifecycle.Active {
		t.Errorf("a lone removal: state %s, want active (not deleted yet)", st)
	}
	c.send("access_code.deleted", ooo, "--occurred-at", at(time.Second))
	c.send("access_code.set_on_device", ooo, "--occurred-at", at(0))
	o := s.code(ooo)
	if o.DeletionState != lifecycle.Removed || o.NeedsTroubleshooting || o.OnDevice == nil || *o.OnDevice {
		t.Errorf("out-of-order code: state %s needs %v on_device %v, want removed, false, false", o.DeletionState, o.NeedsTroubleshooting, o.OnDevice)
	}
	if ptrTime(o.DeletedAt) != at(time.Second) || ptrTime(o.RemovedFromDeviceAt) != at(2*time.Second) {
		t.Errorf("out-of-order code: deleted_at %s removed_from_device_at %s", ptrTime(o.DeletedAt), ptrTime(o.RemovedFromDeviceAt))
	}
	var order []string
	for _, e := range o.Events {
		order = append(order, e.EventType)
	}
	if !sameStrings(order, []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice}) {
		t.Errorf("out-of-order history is not in occurred order: %v", order)
	}

	// A failure Seam reports, acknowledged by an operator. The failure is
	// delivered before the deletion it belongs to, so that however slowly
	// the commands run the deletion is never overdue first.
	failed := seamevent.NewID()
	c.send("access_code.set_on_device", failed)
	c.send("access_code.failed_to_remove_from_device", failed, "--occurred-at", time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano))
	if st := s.code(failed); st.DeletionState != lifecycle.Active || st.NeedsTroubleshooting {
		t.Errorf("a removal failure before the deletion: state %s needs %v, want active and false", st.DeletionState, st.NeedsTroubleshooting)
	}
	c.send("access_code.deleted", failed)
	f := s.code(failed)
	if f.DeletionState != lifecycle.Failed || !f.NeedsTroubleshooting || f.TroubleshootingReason == nil || *f.TroubleshootingReason != lifecycle.ReasonFailed {
		t.Fatalf("failed code: state %s needs %v reason %v", f.DeletionState, f.NeedsTroubleshooting, f.TroubleshootingReason)
	}
	if !strings.Contains(string(f.TroubleshootingDetails), "failed_to_remove_from_device") {
		t.Errorf("troubleshooting_details lack Seam's error: %s", f.TroubleshootingDetails)
	}
	var ack struct {
		AccessCode lifecycle.AccessCode `json:"access_code"`
		OK         bool                 `json:"ok"`
	}
	if st := s.api(http.MethodPost, "/v1/access_codes/"+failed+"/acknowledge", s.Token,
		map[string]string{"note": "checked the lock on site"}, &ack); st != http.StatusOK || !ack.OK {
		t.Fatalf("acknowledge: %d %+v", st, ack)
	}
	if a := ack.AccessCode; a.AcknowledgedBy == nil || *a.AcknowledgedBy != "alice" || a.AcknowledgementNote == nil ||
		*a.AcknowledgementNote != "checked the lock on site" || a.AcknowledgedAt == nil || a.NeedsTroubleshooting {
		t.Errorf("acknowledged code: by %v note %v at %v needs %v", a.AcknowledgedBy, a.AcknowledgementNote, a.AcknowledgedAt, a.NeedsTroubleshooting)
	}
	if a := s.code(failed); a.AcknowledgedBy == nil || *a.AcknowledgedBy != "alice" || a.NeedsTroubleshooting || a.DeletionState != lifecycle.Failed {
		t.Errorf("re-read acknowledged code: by %v needs %v state %s", a.AcknowledgedBy, a.NeedsTroubleshooting, a.DeletionState)
	}

	// The removal timeout passes: one alert at each sink, not before.
	for name, r := range sinks {
		if n := len(r.alerts(code)); n != 0 && time.Since(deletedAt) < 2*time.Second {
			t.Errorf("%s: %d alerts before the removal timeout", name, n)
		}
	}
	waitFor(t, 20*time.Second, "the overdue alert at both sinks", func() bool {
		return len(hooks.alerts(code)) > 0 && len(slack.alerts(code)) > 0
	})
	for name, r := range sinks {
		if first := r.alerts(code)[0]; first.At.Sub(deletedAt) < 2*time.Second {
			t.Errorf("%s: overdue alert %s after the deletion, before the 2s removal timeout", name, first.At.Sub(deletedAt))
		}
	}
	got = s.code(code)
	if got.DeletionState != lifecycle.AwaitingRemoval || !got.NeedsTroubleshooting || got.TroubleshootingReason == nil ||
		*got.TroubleshootingReason != lifecycle.ReasonOverdue {
		t.Errorf("overdue code: state %s needs %v reason %v", got.DeletionState, got.NeedsTroubleshooting, got.TroubleshootingReason)
	}
	// Several sweeps and dispatcher polls later there is still one.
	time.Sleep(1500 * time.Millisecond)
	want := []string{lifecycle.AlertTrouble + "/" + lifecycle.ReasonOverdue}
	for name, r := range sinks {
		if g := alertTypes(r.alerts(code)); !sameStrings(g, want) {
			t.Errorf("%s: alerts for the overdue code %v, want exactly %v", name, g, want)
		}
	}
	troubleID := hooks.alerts(code)[0].AlertID
	if sl := slack.alerts(code); len(sl) > 0 && sl[0].AlertID != troubleID {
		t.Errorf("slack alert_id %s, webhook alert_id %s: not the same alert", sl[0].AlertID, troubleID)
	}
	if p := hooks.alerts(code)[0].Payload; p.DeletedAt == nil || p.AgeSeconds < 2 || p.NextStep == "" || p.DeviceID == "" {
		t.Errorf("overdue payload: %+v", p)
	}

	// Seam confirms the removal: one resolution at each sink.
	c.send("access_code.removed_from_device", code)
	waitFor(t, 20*time.Second, "the resolution at both sinks", func() bool {
		return len(hooks.alerts(code)) > 1 && len(slack.alerts(code)) > 1
	})
	got = s.code(code)
	if got.DeletionState != lifecycle.Removed || got.NeedsTroubleshooting || got.OnDevice == nil || *got.OnDevice {
		t.Errorf("confirmed code: state %s needs %v on_device %v", got.DeletionState, got.NeedsTroubleshooting, got.OnDevice)
	}
	time.Sleep(1500 * time.Millisecond)
	want = append(want, lifecycle.AlertResolved+"/")
	for name, r := range sinks {
		if g := alertTypes(r.alerts(code)); !sameStrings(g, want) {
			t.Errorf("%s: alerts for the code %v, want exactly %v", name, g, want)
		}
	}
	if p := hooks.alerts(code); len(p) == 2 && (p[1].Payload.Resolution != "removed" || p[1].Payload.DeletionState != lifecycle.Removed) {
		t.Errorf("resolution payload: %+v", p[1].Payload)
	}

	// The other two codes' alerts, by now settled.
	for name, r := range sinks {
		if g := r.alerts(ooo); len(g) != 0 {
			t.Errorf("%s: alerts for the out-of-order code, which was never in trouble: %v", name, alertTypes(g))
		}
		wantF := []string{lifecycle.AlertTrouble + "/" + lifecycle.ReasonFailed, lifecycle.AlertResolved + "/" + lifecycle.ReasonFailed}
		if g := alertTypes(r.alerts(failed)); !sameStrings(g, wantF) {
			t.Errorf("%s: alerts for the acknowledged code %v, want %v", name, g, wantF)
		}
		if p := r.problems(); len(p) > 0 {
			t.Errorf("%s sink refused requests: %v", name, p)
		}
		ids := map[string]bool{}
		for _, a := range r.alerts("") {
			if ids[a.AlertID] {
				t.Errorf("%s: alert %s delivered twice", name, a.AlertID)
			}
			ids[a.AlertID] = true
		}
	}
	if h := hooks.alerts(failed); len(h) == 2 {
		p := h[1].Payload
		if p.Resolution != "acknowledged" || p.AcknowledgedBy != "alice" || p.Note != "checked the lock on site" {
			t.Errorf("acknowledgement alert: resolution %q by %q note %q", p.Resolution, p.AcknowledgedBy, p.Note)
		}
	}

	if code, d := s.stop(15 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM (%s)", code, d)
	}
	checkLogs(t, s, c.bodies, alertSecret, slackPath)

	// The log sink delivered the same alerts, once each.
	var logged []string
	for _, r := range s.logsWithMsg("alert") {
		if r["access_code_id"] == code {
			logged = append(logged, r["type"].(string)+"/"+r["troubleshooting_reason"].(string))
		}
	}
	if !sameStrings(logged, []string{lifecycle.AlertTrouble + "/" + lifecycle.ReasonOverdue, lifecycle.AlertResolved + "/"}) {
		t.Errorf("log sink alerts for the code: %v", logged)
	}
}

// checkLogs asserts the JSON log never shows a secret, a token or an event
// body.
func checkLogs(t *testing.T, s *server, bodies []string, moreSecrets ...string) {
	t.Helper()
	logs := s.logs()
	if len(logs) == 0 {
		t.Fatal("no logs")
	}
	recs := s.logRecords() // every line must be JSON
	secrets := map[string]string{
		"SEAM_WEBHOOK_SECRET":             s.Secret,
		"SEAM_WEBHOOK_SECRET (key part)":  strings.TrimPrefix(s.Secret, "whsec_"),
		"CODEWATCH_OPS_TOKEN":             s.Token,
		"CODEWATCH_OPS_TOKEN (full form)": s.env["CODEWATCH_OPS_TOKEN"],
	}
	if u, err := url.Parse(s.env["DATABASE_URL"]); err == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			secrets["the DATABASE_URL password"] = pw
		}
	}
	for i, m := range moreSecrets {
		secrets["secret "+string(rune('A'+i))] = m
		if k, ok := strings.CutPrefix(m, "whsec_"); ok {
			secrets["secret "+string(rune('A'+i))+" (key part)"] = k
		}
	}
	for name, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			t.Errorf("the log contains %s", name)
		}
	}
	for _, b := range bodies {
		esc, _ := json.Marshal(b)
		if strings.Contains(logs, b) || strings.Contains(logs, strings.Trim(string(esc), `"`)) {
			t.Errorf("the log contains an event body: %s", b)
		}
	}
	for _, r := range recs {
		for _, k := range []string{"body", "raw", "payload", "secret", "token", "authorization"} {
			if _, ok := r[k]; ok {
				t.Errorf("log record has a %q field: %v", k, r)
			}
		}
	}
	for _, w := range []string{"codewatch serving", "shutting down", "stopped"} {
		if len(s.logsWithMsg(w)) != 1 {
			t.Errorf("want one %q log line", w)
		}
	}
}

// migrationNames are every migration this build applies, River's first.
func migrationNames(t *testing.T) (all, ours []string) {
	t.Helper()
	all, err := migrations.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if strings.HasSuffix(n, ".sql") {
			ours = append(ours, n)
		}
	}
	return all, ours
}

var statusColumns = regexp.MustCompile(`\s{2,}`)

// appliedOurs matches migrate up's line for one of codewatch's migrations.
var appliedOurs = regexp.MustCompile(`(?m)^applied \d{5}_\w+\.sql `)

// migrateStatus runs `codewatch migrate status` and returns name -> state.
func migrateStatus(t *testing.T, env []string) map[string]string {
	t.Helper()
	res := runCLI(t, env, "migrate", "status")
	if res.Code != 0 {
		t.Fatalf("migrate status: exit %d: %s", res.Code, res.Stderr)
	}
	all, _ := migrationNames(t)
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(lines) != len(all)+1 || !strings.HasPrefix(lines[0], "MIGRATION") {
		t.Fatalf("migrate status: want a header and %d migrations, got:\n%s", len(all), res.Stdout)
	}
	out := map[string]string{}
	for i, l := range lines[1:] {
		f := statusColumns.Split(strings.TrimSpace(l), -1)
		if len(f) != 3 || f[0] != all[i] || (f[1] != "applied" && f[1] != "pending") {
			t.Fatalf("migrate status: cannot read line %q (want %s)", l, all[i])
		}
		if strings.HasSuffix(f[0], ".sql") && (f[1] == "applied") != (f[2] != "-") {
			t.Errorf("migrate status: state %s with applied-at %s", f[1], f[2])
		}
		out[f[0]] = f[1]
	}
	return out
}

// wantStatus checks that River's migrations are all applied (or all pending)
// and the first applied of ours.
func wantStatus(t *testing.T, env []string, river bool, applied int) {
	t.Helper()
	got := migrateStatus(t, env)
	all, ours := migrationNames(t)
	for _, n := range all {
		want := "pending"
		if i := slices.Index(ours, n); (i < 0 && river) || (i >= 0 && i < applied) {
			want = "applied"
		}
		if got[n] != want {
			t.Errorf("after %d applied: %s is %q, want %s", applied, n, got[n], want)
		}
	}
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	db := freshDatabase(t)
	env := []string{"DATABASE_URL=" + db}
	all, ours := migrationNames(t)

	wantStatus(t, env, false, 0)
	res := runCLI(t, env, "migrate", "up")
	if res.Code != 0 || strings.Count(res.Stdout, "applied ") != len(all) {
		t.Fatalf("migrate up: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	wantStatus(t, env, true, len(ours))
	if res := runCLI(t, env, "migrate", "up"); res.Code != 0 || !strings.Contains(res.Stdout, "no pending migrations") {
		t.Errorf("second migrate up: exit %d %q %q", res.Code, res.Stdout, res.Stderr)
	}
	for v := len(ours); v >= 1; v-- {
		res := runCLI(t, env, "migrate", "down")
		if res.Code != 0 || !strings.Contains(res.Stdout, "rolled back "+ours[v-1]) {
			t.Fatalf("migrate down (expecting %s): exit %d %q %q", ours[v-1], res.Code, res.Stdout, res.Stderr)
		}
		wantStatus(t, env, true, v-1)
	}
	conn := dbConn(t, db)
	var tables int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name <> 'goose_db_version' AND table_name NOT LIKE 'river%'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("after rolling all of codewatch's migrations back %d tables remain", tables)
	}
	// Nothing left to roll back: an error, not a silent success.
	if res := runCLI(t, env, "migrate", "down"); res.Code == 0 {
		t.Errorf("migrate down with nothing applied succeeded: %q", res.Stdout)
	} else {
		t.Logf("migrate down with nothing applied: exit %d: %s", res.Code, strings.TrimSpace(res.Stderr))
	}
	res = runCLI(t, env, "migrate", "up")
	// Our files are numbered 00001_ on ("applied 0000" missed 00010 on).
	if res.Code != 0 || len(appliedOurs.FindAllString(res.Stdout, -1)) != len(ours) {
		t.Fatalf("migrate up again: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	wantStatus(t, env, true, len(ours))
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name IN ('events', 'quarantine', 'access_codes', 'alerts', 'alert_deliveries')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 5 {
		t.Errorf("after up again: %d of 5 tables", tables)
	}

	// An unreachable database is an error, promptly, without the password.
	start := time.Now()
	pw := "pw-" + randomHex(8)
	res = runCLI(t, []string{"DATABASE_URL=postgres://codewatch:" + pw + "@127.0.0.1:1/none?sslmode=disable"}, "migrate", "status")
	if res.Code == 0 || res.Stderr == "" {
		t.Errorf("migrate status on an unreachable database: exit %d %q", res.Code, res.Stderr)
	}
	if strings.Contains(res.Stdout+res.Stderr, pw) {
		t.Errorf("the error shows the database password: %q", res.Stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("migrate status on an unreachable database took %s", d)
	}
}

// Two replicas started at the same instant on a fresh database: both become
// ready and each migration is applied once.
func TestMigrateConcurrentServe(t *testing.T) {
	t.Parallel()
	db := freshDatabase(t)
	a := newServer(t, "serve-a", newServeEnv(t, db))
	b := newServer(t, "serve-b", newServeEnv(t, db))
	a.start()
	b.start()
	a.waitReady(30 * time.Second)
	b.waitReady(30 * time.Second)
	all, _ := migrationNames(t)
	assertMigratedOnce(t, db)
	applied := len(a.logsWithMsg("migration applied")) + len(b.logsWithMsg("migration applied"))
	if applied != len(all) {
		t.Errorf("the two replicas logged %d \"migration applied\" lines, want %d in all", applied, len(all))
	}
	for _, s := range []*server{a, b} {
		if code, _ := s.stop(15 * time.Second); code != 0 {
			t.Errorf("%s: exit code %d", s.name, code)
		}
	}
}
