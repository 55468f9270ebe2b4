package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/seamtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
	"github.com/codewatch/codewatch/seamevent"
)

// seamEnv is the environment that points codewatch at Seam's fake.
func seamEnvFor(f *seamtest.Fake) map[string]string {
	return map[string]string{"SEAM_API_KEY": f.APIKey, "SEAM_API_URL": f.URL, "CODEWATCH_SEAM_RPS": "100"}
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// fakeEvent returns the fake's one event of type typ for code, exactly as
// events/list gives it.
func fakeEvent(t *testing.T, c *seam.Client, typ, code string) []byte {
	t.Helper()
	evs, err := c.ListEvents(context.Background(), seam.ListEventsParams{Since: time.Now().Add(-time.Hour),
		EventTypes: []string{typ}, AccessCodeIDs: []string{code}})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range evs {
		var e struct {
			EventType    string `json:"event_type"`
			AccessCodeID string `json:"access_code_id"`
		}
		if json.Unmarshal(raw, &e) == nil && e.EventType == typ && e.AccessCodeID == code {
			return raw
		}
	}
	t.Fatalf("the fake has no %s for %s", typ, code)
	return nil
}

// The README's story against Seam's fake, with the real binary: an ops user
// deletes a code with `codewatch delete`, watches it go from
// deletion_requested to awaiting_removal (Seam's webhook) to removed (a
// lookup); a code whose webhooks never came is backfilled at start-up and
// confirmed by polling.
func TestE2ESeamAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := seamtest.Start(t)
	api, err := seam.New(seam.Config{APIKey: fake.APIKey, BaseURL: fake.URL, RPS: 1000})
	if err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewURL(t)
	env := newServeEnv(t, db)
	for k, v := range seamEnvFor(fake) {
		env[k] = v
	}
	env["CODEWATCH_RECONCILE_AFTER"] = "2s"
	s := startServer(t, "serve", env)
	if len(s.logsWithMsg("Seam API on")) != 1 {
		t.Errorf("serve did not say the Seam API is on:\n%s", s.logs())
	}
	cli := append(envList(seamEnvFor(fake)), "DATABASE_URL="+db, "CODEWATCH_RECONCILE_AFTER=2s",
		"CODEWATCH_DATA_KEYS="+env["CODEWATCH_DATA_KEYS"])

	// A code Seam manages, set on the lock; codewatch heard of it by webhook.
	code, err := fake.CreateAccessCode(ctx, fake.Devices[0], "4821")
	if err != nil {
		t.Fatal(err)
	}
	c := &cliSender{t: t, s: s}
	c.send("access_code.set_on_device", code, "--device-id", fake.Devices[0], "--workspace-id", fake.WorkspaceID)

	res := runCLI(t, cli, "delete", code)
	if res.Code != 0 || !strings.HasPrefix(res.Stdout, code+"\tdeletion_requested\taction_attempt_id=") {
		t.Fatalf("codewatch delete: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	got := s.code(code)
	if got.DeletionState != lifecycle.DeletionRequested || got.DeletionRequest.RequestedBy != "cli" {
		t.Fatalf("after delete: %s %+v", got.DeletionState, got.DeletionRequest)
	}
	// serve follows the attempt (the fake's succeeds at once).
	waitFor(t, 15*time.Second, "the attempt's success", func() bool {
		c := s.code(code)
		return c.DeletionRequest != nil && c.DeletionRequest.Status == "success"
	})
	// Seam's access_code.deleted arrives as a signed webhook.
	if st, _, err := postSigned(s.client, s, seamevent.NewMessageID(), fakeEvent(t, api, lifecycle.TypeDeleted, code)); err != nil || st != http.StatusOK {
		t.Fatalf("deleted webhook: %d %v", st, err)
	}
	if got := s.code(code); got.DeletionState != lifecycle.AwaitingRemoval {
		t.Fatalf("after Seam's deletion: %s", got.DeletionState)
	}
	res = runCLI(t, cli, "reconcile", code)
	if res.Code != 0 || strings.TrimSpace(res.Stdout) != code+"\tremoved\tconfirmed_by=poll" {
		t.Fatalf("codewatch reconcile: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	var api1 struct {
		AccessCode map[string]any `json:"access_code"`
	}
	s.api(http.MethodGet, "/v1/access_codes/"+code, s.Token, nil, &api1)
	if api1.AccessCode["confirmed_by"] != "poll" || api1.AccessCode["deletion_state"] != "removed" {
		t.Fatalf("API: %v", api1.AccessCode)
	}

	// A code whose webhooks never came: created and deleted in Seam while
	// codewatch was down.
	s.stop(10 * time.Second)
	silent, err := fake.CreateAccessCode(ctx, fake.Devices[1], "9911")
	if err != nil {
		t.Fatal(err)
	}
	// The lock was programmed (the fake never says so itself: its event is
	// added the way Seam would have recorded it), then the code deleted.
	if _, err := fake.AddEvent(ctx, map[string]any{"event_type": lifecycle.TypeSetOnDevice, "access_code_id": silent,
		"device_id": fake.Devices[1]}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // the deletion sorts after the set
	if _, err := api.DeleteAccessCode(ctx, silent, ""); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, "serve again", env)
	// Queued once it serves (startServer may return a moment before).
	waitFor(t, 10*time.Second, "the start-up backfill queued", func() bool {
		return len(s2.logsWithMsg("start-up backfill queued")) > 0
	})
	if n := len(s2.logsWithMsg("start-up backfill queued")); n != 1 {
		t.Errorf("start-up backfill queued %d times:\n%s", n, s2.logs())
	}
	waitFor(t, 20*time.Second, "the silent code backfilled", func() bool {
		var r struct {
			AccessCode *lifecycle.AccessCode `json:"access_code"`
		}
		return s2.api(http.MethodGet, "/v1/access_codes/"+silent, s2.Token, nil, &r) == http.StatusOK && r.AccessCode.DeletedAt != nil
	})
	// Its newest evidence grows older than 2s: the scan looks it up and the
	// 404 confirms it.
	waitFor(t, 30*time.Second, "the silent code confirmed by polling", func() bool {
		return s2.code(silent).DeletionState == lifecycle.Removed
	})
	got = s2.code(silent)
	if *got.ConfirmedBy != "poll" {
		t.Errorf("confirmed_by %v", got.ConfirmedBy)
	}
	var sources []string
	for _, ev := range got.Events {
		sources = append(sources, ev.EventType+"/"+ev.Source)
	}
	if strings.Join(sources, ",") != "access_code.created/poll,access_code.set_on_device/poll,access_code.deleted/poll,codewatch.access_code_not_found/poll" {
		t.Errorf("history: %v", sources)
	}
	// A backfill by hand now finds nothing new.
	res = runCLI(t, cli, "backfill", "--since", "1h")
	if res.Code != 0 || !strings.Contains(res.Stdout, " 0 stored,") || strings.Contains(res.Stdout, " 0 duplicate") {
		t.Fatalf("codewatch backfill: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
	}
	// Without SEAM_API_KEY the commands say what they need.
	res = runCLI(t, []string{"DATABASE_URL=" + db, "CODEWATCH_DATA_KEYS=" + env["CODEWATCH_DATA_KEYS"]}, "delete", code)
	if res.Code != 2 || !strings.Contains(res.Stderr, "SEAM_API_KEY: required") {
		t.Errorf("delete without a key: %d %s", res.Code, res.Stderr)
	}
}

// serve without SEAM_API_KEY says so in one line.
func TestServeSeamAPIOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, "serve", newServeEnv(t, pgtest.NewURL(t)))
	waitFor(t, 10*time.Second, "the log line", func() bool { return len(s.logsWithMsg("codewatch serving")) == 1 })
	off := 0
	for _, r := range s.logRecords() {
		if m, _ := r["msg"].(string); strings.HasPrefix(m, "Seam API off") {
			off++
		}
	}
	if off != 1 {
		t.Errorf("%d Seam API off lines:\n%s", off, s.logs())
	}
	var e struct{ Error struct{ Type string } }
	if st := s.api(http.MethodPost, "/v1/access_codes/x/delete", s.Token, nil, &e); st != http.StatusNotImplemented || e.Error.Type != "seam_api_not_configured" {
		t.Errorf("delete: %d %+v", st, e)
	}
}

// seamLimits plays Seam's access_codes/delete for TestDeleteCLIScale (Seam's
// fake has no rate limits): it refuses about one call in eight with 429, and
// records every accepted deletion and when each call came, per device.
type seamLimits struct {
	mu       sync.Mutex
	calls    []time.Time
	byDevice map[string][]time.Time
	deleted  map[string]int
	refused  int
	deviceOf map[string]string
}

func (l *seamLimits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AccessCodeID string `json:"access_code_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	w.Header().Set("Content-Type", "application/json")
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.calls = append(l.calls, now)
	if r.URL.Path != "/access_codes/delete" || r.Header.Get("Authorization") != "Bearer seam_test_key" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"type":"not_found","message":"no such route"},"ok":false}`)
		return
	}
	if len(l.calls)%8 == 0 {
		l.refused++
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"type":"rate_limit_exceeded","message":"Too many requests"},"ok":false}`)
		return
	}
	dev := l.deviceOf[body.AccessCodeID]
	l.byDevice[dev] = append(l.byDevice[dev], now)
	l.deleted[body.AccessCodeID]++
	fmt.Fprintf(w, `{"action_attempt":{"action_attempt_id":"aa_%s","action_type":"DELETE_ACCESS_CODE","status":"pending","result":null,"error":null},"ok":true}`, body.AccessCodeID)
}

// A property manager's check-out: 1,000 `codewatch delete`s, ids on
// standard input, against a server that answers 429 now and then. Every
// code is deleted exactly once, each outcome is reported, and the global and
// per-device rate limits hold.
func TestDeleteCLIScale(t *testing.T) {
	t.Parallel()
	const codes, devices, rps, perDevice = 1000, 100, 200, 20
	db := pgtest.NewURL(t)
	lim := &seamLimits{byDevice: map[string][]time.Time{}, deleted: map[string]int{}, deviceOf: map[string]string{}}
	srv := httptest.NewServer(lim)
	t.Cleanup(srv.Close)

	// codewatch knows each code and its lock (from webhooks, here stored
	// through a server run briefly).
	env := newServeEnv(t, db)
	s := startServer(t, "serve", env)
	var ids []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < codes; i++ {
		id := fmt.Sprintf("code_%04d", i)
		dev := fmt.Sprintf("device_%03d", i%devices)
		ids = append(ids, id)
		lim.deviceOf[id] = dev
		body, err := seamevent.Build(lifecycle.TypeSetOnDevice, seamevent.Options{AccessCodeID: id, DeviceID: dev})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if st, _, err := postSigned(s.client, s, seamevent.NewMessageID(), body); err != nil || st != http.StatusOK {
				t.Errorf("webhook %s: %d %v", id, st, err)
			}
		}()
	}
	wg.Wait()
	s.stop(10 * time.Second)

	cmd := exec.Command(codewatchBin(t), "delete", "--by", "checkout")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "DATABASE_URL=" + db,
		"CODEWATCH_DATA_KEYS=" + env["CODEWATCH_DATA_KEYS"],
		"SEAM_API_KEY=seam_test_key", "SEAM_API_URL=" + srv.URL, fmt.Sprintf("CODEWATCH_SEAM_RPS=%d", rps),
		fmt.Sprintf("CODEWATCH_SEAM_DEVICE_DELETES_PER_MINUTE=%d", perDevice)}
	cmd.Stdin = strings.NewReader(strings.Join(ids, "\n") + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("codewatch delete: %v\n%s", err, tail(stderr.String(), 3000))
	}
	took := time.Since(start)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != codes {
		t.Fatalf("%d outcome lines for %d codes", len(lines), codes)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 3 || f[1] != "deletion_requested" || f[2] != "action_attempt_id=aa_"+f[0] || seen[f[0]] {
			t.Fatalf("outcome line %q", l)
		}
		seen[f[0]] = true
	}
	lim.mu.Lock()
	defer lim.mu.Unlock()
	for _, id := range ids {
		if lim.deleted[id] != 1 {
			t.Errorf("%s deleted %d times", id, lim.deleted[id])
		}
	}
	if lim.refused == 0 {
		t.Error("no 429 was exercised")
	}
	// Global: no one-second window holds more than rps calls plus the
	// limiter's burst (rps).
	for i := range lim.calls {
		j := sort.Search(len(lim.calls), func(k int) bool { return lim.calls[k].Sub(lim.calls[i]) >= time.Second })
		if j-i > 2*rps {
			t.Fatalf("%d calls within a second from call %d", j-i, i)
		}
	}
	for dev, ts := range lim.byDevice {
		for i := range ts {
			j := sort.Search(len(ts), func(k int) bool { return ts[k].Sub(ts[i]) >= time.Minute })
			if j-i > perDevice {
				t.Fatalf("%s: %d deletions within a minute", dev, j-i)
			}
		}
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("delete: %d requested, 0 failed", codes)) {
		t.Errorf("summary line: %s", tail(stderr.String(), 500))
	}
	t.Logf("1000 deletions in %s (%d calls, %d refused with 429)", took.Round(time.Millisecond), len(lim.calls), lim.refused)
	// Every request is recorded, with its follow job.
	conn := dbConn(t, db)
	var n, jobs int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM access_codes WHERE deletion_state = 'deletion_requested'`).Scan(&n); err != nil || n != codes {
		t.Errorf("%d codes deletion_requested: %v", n, err)
	}
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'follow_action_attempt'`).Scan(&jobs); err != nil || jobs != codes {
		t.Errorf("%d follow jobs: %v", jobs, err)
	}
}
