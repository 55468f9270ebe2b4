package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

var keyEntry = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=$`)

// keysGenerate runs `codewatch keys generate [id]` and returns the entry.
func keysGenerate(t *testing.T, id ...string) string {
	t.Helper()
	res := runCLI(t, nil, append([]string{"keys", "generate"}, id...)...)
	entry := strings.TrimSpace(res.Stdout)
	if res.Code != 0 || !keyEntry.MatchString(entry) || res.Stderr != "" {
		t.Fatalf("keys generate %v: exit %d %q %q", id, res.Code, res.Stdout, res.Stderr)
	}
	return entry
}

func TestKeysGenerate(t *testing.T) {
	t.Parallel()
	a, b := keysGenerate(t, "k2"), keysGenerate(t, "k2")
	if !strings.HasPrefix(a, "k2:") || a == b {
		t.Errorf("two keys: %q %q", a, b)
	}
	if d := keysGenerate(t); !strings.HasPrefix(d, "k"+time.Now().UTC().Format("2006")) {
		t.Errorf("default id: %q", d)
	}
	for _, args := range [][]string{{"keys"}, {"keys", "make"}, {"keys", "generate", "no spaces allowed"}, {"keys", "generate", "a", "b"}} {
		if res := runCLI(t, nil, args...); res.Code != 2 || strings.Count(res.Stderr, "\n") != 1 || res.Stdout != "" {
			t.Errorf("codewatch %v: exit %d %q %q", args, res.Code, res.Stdout, res.Stderr)
		}
	}
}

// The upgrade and a key rotation, as docs/operations.md tells them: serve
// seals bodies an older version stored in clear; a new key goes first with
// the old one after it; `codewatch rekey` re-encrypts everything while the
// service runs and takes webhooks; serve restarted with the old key removed
// reads every stored body.
func TestRekeyRotationEndToEnd(t *testing.T) {
	t.Parallel()
	db := pgtest.NewURL(t)
	conn := dbConn(t, db)
	ctx := context.Background()

	type sentEvent struct {
		msg  string
		body []byte
	}
	// What a version before encryption left: bodies in clear.
	oldCode := seamevent.NewID()
	oldMsg := seamevent.NewMessageID()
	oldBody, _ := seamevent.Build(lifecycle.TypeSetOnDevice, seamevent.Options{AccessCodeID: oldCode, Code: proofPIN,
		DeviceID: seamevent.DeviceIDFor(oldCode), OccurredAt: time.Now().Add(-time.Hour)})
	if _, err := conn.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, access_code_id, device_id, raw)
		VALUES ($1, $2, 'access_code.set_on_device', $3, $4, $5)`, oldMsg, "old-"+oldCode, oldCode, seamevent.DeviceIDFor(oldCode), oldBody); err != nil {
		t.Fatal(err)
	}
	sent := []sentEvent{{oldMsg, oldBody}}
	// ... its deletion, and an unlock by its PIN since that Seam tied to no
	// code: unmatched while in clear (no hash), matched once the start-up
	// pass has sealed them, which refolds the code.
	for _, e := range []struct {
		typ, code string
		at        time.Duration
	}{{lifecycle.TypeDeleted, oldCode, -50 * time.Minute}, {lifecycle.TypeLockUnlocked, "", -10 * time.Minute}} {
		msg := seamevent.NewMessageID()
		body, _ := seamevent.Build(e.typ, seamevent.Options{AccessCodeID: e.code, Code: proofPIN,
			DeviceID: seamevent.DeviceIDFor(oldCode), OccurredAt: time.Now().Add(e.at)})
		var code *string
		if e.code != "" {
			code = &e.code
		} else {
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			delete(m, "access_code_id")
			m["code"] = proofPIN
			body, _ = json.Marshal(m)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, access_code_id, device_id, occurred_at, raw)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, msg, "old-"+msg, e.typ, code, seamevent.DeviceIDFor(oldCode), time.Now().Add(e.at), body); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, sentEvent{msg, body})
	}
	oldQ := []byte(`{"event_id":"q-old","event_type":"access_code.set_on_device","code":"` + proofPIN + `"}`)
	if _, err := conn.Exec(ctx, `INSERT INTO quarantine (message_id, reason, raw) VALUES ('msg_q_old', 'missing_access_code_id', $1)`, oldQ); err != nil {
		t.Fatal(err)
	}
	keyCounts := func() map[string]int {
		t.Helper()
		rs, err := conn.Query(ctx, `SELECT COALESCE(key_id, 'clear'), count(*) FROM
			(SELECT key_id FROM events UNION ALL SELECT key_id FROM quarantine) k GROUP BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		out := map[string]int{}
		for rs.Next() {
			var k string
			var n int
			if err := rs.Scan(&k, &n); err != nil {
				t.Fatal(err)
			}
			out[k] = n
		}
		return out
	}

	// 1. The upgrade: serve with k1 seals them in the background.
	k1 := keysGenerate(t, "k1")
	env := newServeEnv(t, db)
	env["CODEWATCH_DATA_KEYS"] = k1
	s1 := startServer(t, "serve k1", env)
	waitFor(t, 20*time.Second, "the start-up pass to seal the clear bodies", func() bool {
		return len(s1.logsWithMsg("bodies stored in clear are sealed")) == 1
	})
	if n := keyCounts(); n["k1"] != 4 || len(n) != 1 {
		t.Fatalf("after the start-up pass: %v", n)
	}
	if l := s1.logsWithMsg("bodies stored in clear are sealed")[0]; l["events"] != float64(3) || l["quarantine"] != float64(1) || l["refolded"] != float64(1) {
		t.Errorf("start-up pass log: %v", l)
	}
	if c := s1.code(oldCode); c.TroubleshootingReason == nil || *c.TroubleshootingReason != lifecycle.ReasonUsedAfterDeletion {
		t.Errorf("the old code, used after its deletion, once the pass has sealed its events: %v", c.TroubleshootingReason)
	}
	sender := func(s *server) *seamevent.Sender { return &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret} }
	var sentMu sync.Mutex
	send := func(s *server) {
		t.Helper()
		code := seamevent.NewID()
		for _, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
			msg := seamevent.NewMessageID()
			body, _ := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, Code: proofPIN, DeviceID: seamevent.DeviceIDFor(code)})
			rep, err := sender(s).Send(ctx, msg, body)
			if err != nil || rep.Status != http.StatusOK || strings.Contains(string(rep.Body), "quarantined") {
				t.Errorf("send: %v %d %s", err, rep.Status, rep.Body)
				return
			}
			sentMu.Lock()
			sent = append(sent, sentEvent{msg, body})
			sentMu.Unlock()
		}
	}
	for range 5 {
		send(s1)
	}
	if code, _ := s1.stop(15 * time.Second); code != 0 {
		t.Fatalf("serve k1 exited %d", code)
	}

	// 2. Rotation: k2 first, k1 after it; rekey while serving webhooks.
	k2 := keysGenerate(t, "k2")
	env["CODEWATCH_DATA_KEYS"] = k2 + "," + k1
	s2 := startServer(t, "serve k2,k1", env)
	for range 5 {
		send(s2)
	}
	var stop atomic.Bool
	var load sync.WaitGroup
	load.Go(func() {
		for !stop.Load() {
			send(s2)
		}
	})
	res := runCLI(t, []string{"DATABASE_URL=" + db, "CODEWATCH_DATA_KEYS=" + k2 + "," + k1}, "rekey", "--batch", "3")
	stop.Store(true)
	load.Wait()
	if res.Code != 0 {
		t.Fatalf("rekey: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	t.Logf("codewatch rekey:\n%s", res.Stdout)
	for _, want := range []string{"rekey: encrypting under key k2 (configured: k2, k1)", "rekey: events 0/", "rekey: events 13/13 (100%)",
		"rekey: quarantine 1/1 (100%)", "rekey: re-encrypted 13 events and 1 quarantined deliveries", "no body uses k1, which may be removed"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("rekey output lacks %q:\n%s", want, res.Stdout)
		}
	}
	if strings.Contains(res.Stdout+res.Stderr, strings.SplitN(k1, ":", 2)[1]) || strings.Contains(res.Stdout+res.Stderr, strings.SplitN(k2, ":", 2)[1]) {
		t.Errorf("rekey printed key material:\n%s%s", res.Stdout, res.Stderr)
	}
	if n := keyCounts(); n["k2"] < 24 || len(n) != 1 {
		t.Fatalf("after rekey: %v", n)
	}
	if code, _ := s2.stop(15 * time.Second); code != 0 {
		t.Fatalf("serve k2,k1 exited %d", code)
	}

	// 3. k1 removed: every stored body still reads.
	env["CODEWATCH_DATA_KEYS"] = k2
	s3 := startServer(t, "serve k2", env)
	sentMu.Lock()
	all := append([]sentEvent(nil), sent...)
	sentMu.Unlock()
	for _, e := range all {
		rep, err := sender(s3).Send(ctx, e.msg, e.body)
		if err != nil || rep.Status != http.StatusOK || !strings.Contains(string(rep.Body), `"duplicate":true`) {
			t.Fatalf("redelivery of %s with k1 removed: %v %d %s", e.msg, err, rep.Status, rep.Body)
		}
	}
	var q struct {
		Q []struct {
			Body            *string `json:"body"`
			BodyUnavailable *string `json:"body_unavailable"`
		} `json:"quarantined_deliveries"`
	}
	if st := s3.api(http.MethodGet, "/v1/quarantine", s3.Token, nil, &q); st != 200 || len(q.Q) != 1 || q.Q[0].Body == nil ||
		!strings.Contains(*q.Q[0].Body, `"code":"••64"`) || q.Q[0].BodyUnavailable != nil {
		b, _ := json.Marshal(q)
		t.Errorf("quarantine with k1 removed: %d %s", st, b)
	}
	if c := s3.code(oldCode); c.PinHint == nil || *c.PinHint != "••64" {
		t.Errorf("the upgraded code's PIN hint: %v", c.PinHint)
	}
	// Refolded with k1 gone (its next event), the unlock still matches.
	rep, err := sender(s3).Send(ctx, seamevent.NewMessageID(), mustBuild(t, lifecycle.TypeDelayInRemoving, seamevent.Options{AccessCodeID: oldCode,
		DeviceID: seamevent.DeviceIDFor(oldCode), OccurredAt: time.Now().Add(-time.Minute)}))
	if err != nil || rep.Status != http.StatusOK {
		t.Fatalf("send: %v %d", err, rep.Status)
	}
	if c := s3.code(oldCode); c.TroubleshootingReason == nil || *c.TroubleshootingReason != lifecycle.ReasonUsedAfterDeletion {
		t.Errorf("the old code refolded after rekey, k1 removed: %v", c.TroubleshootingReason)
	}
	if res := runCLI(t, []string{"DATABASE_URL=" + db, "CODEWATCH_DATA_KEYS=" + k2}, "quarantine", "retry"); res.Code != 0 ||
		!strings.Contains(res.Stdout, "1 still unusable") {
		t.Errorf("quarantine retry with k1 removed: exit %d %s%s", res.Code, res.Stdout, res.Stderr)
	}
	if code, _ := s3.stop(15 * time.Second); code != 0 {
		t.Errorf("serve k2 exited %d", code)
	}

	// With only the removed key nothing can be read: rekey says which key
	// it needs, in one line, and fails.
	res = runCLI(t, []string{"DATABASE_URL=" + db, "CODEWATCH_DATA_KEYS=" + k1}, "rekey")
	if res.Code != 1 || strings.Count(res.Stderr, "\n") != 1 || !strings.Contains(res.Stderr, `under key "k2", which is not in CODEWATCH_DATA_KEYS`) {
		t.Errorf("rekey with only the old key: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if res := runCLI(t, []string{"DATABASE_URL=" + db}, "rekey"); res.Code != 2 || !strings.Contains(res.Stderr, "CODEWATCH_DATA_KEYS: required") {
		t.Errorf("rekey without keys: exit %d %q", res.Code, res.Stderr)
	}
}

func mustBuild(t *testing.T, typ string, o seamevent.Options) []byte {
	t.Helper()
	b, err := seamevent.Build(typ, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
