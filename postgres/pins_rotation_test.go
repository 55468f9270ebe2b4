package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// pinEnv is a database, a clock, and stores on them with the keys a test
// gives, as replicas before, during and after a rotation are.
type pinEnv struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	clock *swClock
}

func newPinEnv(t *testing.T) *pinEnv {
	return &pinEnv{t: t, ctx: context.Background(), pool: pgtest.New(t), clock: newSwClock()}
}

func (e *pinEnv) store(keys *datakeys.Keyring) *postgres.Store {
	return storetest.New(e.t, e.pool, postgres.Config{Keys: keys, RemovalTimeout: 30 * time.Minute,
		Now: e.clock.Now, Sinks: swSinks})
}

// at is the clock's now plus m minutes, as Seam writes occurred_at.
func (e *pinEnv) at(m int) string {
	return e.clock.Now().Add(time.Duration(m) * time.Minute).UTC().Format(time.RFC3339Nano)
}

func (e *pinEnv) send(s *postgres.Store, fields map[string]any) {
	e.t.Helper()
	if _, ok := fields["event_id"]; !ok {
		fields["event_id"] = seamevent.NewID()
	}
	b, _ := json.Marshal(fields)
	res, err := s.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: b})
	if err != nil || res.Outcome != lifecycle.Stored {
		e.t.Fatalf("ingest %s: %+v %v", b, res, err)
	}
}

// codeEvent is one of a code's own events with its PIN, on lock.
func codeEvent(typ, code, lock, pin, at string) map[string]any {
	return map[string]any{"event_type": typ, "access_code_id": code, "device_id": lock, "code": pin, "occurred_at": at}
}

// unlockByPIN is the lock's unlock by a PIN Seam did not tie to a code.
func unlockByPIN(lock, pin, at string) map[string]any {
	return map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": lock, "code": pin, "method": "keycode", "occurred_at": at}
}

func (e *pinEnv) get(s *postgres.Store, code string) *lifecycle.AccessCode {
	e.t.Helper()
	c, err := s.GetAccessCode(e.ctx, code)
	if err != nil {
		e.t.Fatalf("get %s: %v", code, err)
	}
	return c
}

func reasonOf(c *lifecycle.AccessCode) string {
	if c.TroubleshootingReason == nil || !c.NeedsTroubleshooting {
		return "(none)"
	}
	return *c.TroubleshootingReason
}

// Defect (issue "Never a false all-clear", 4): PINs were matched on the hash
// stored with each event, under the key that sealed it. A code stored under
// k1, then an unlock by its PIN stored under k2 once k2 was put first: the
// unlock named the code (its PIN hashed under every key) but the code's
// fold, matching stored hash to stored hash, never saw the unlock, and the
// deleted code that still opened the door stayed awaiting_removal. The same
// with the unlock stored first, under k1, and the code's events under k2.
// Matching works across every configured key, and keeps working after
// rekey, with the old key removed.
func TestPINMatchAcrossKeys(t *testing.T) {
	e1, e2 := keyEntry(t, "k1"), keyEntry(t, "k2")
	k1, both, onlyK2 := ring(t, e1), ring(t, e2, e1), ring(t, e2)

	check := func(t *testing.T, e *pinEnv, s *postgres.Store, code, what string) {
		t.Helper()
		c := e.get(s, code)
		if reasonOf(c) != lifecycle.ReasonUsedAfterDeletion || !c.DeletionState.Unconfirmed() {
			t.Fatalf("%s: %s, %s; want used_after_deletion", what, c.DeletionState, reasonOf(c))
		}
	}
	t.Run("code under k1, unlock under k2", func(t *testing.T) {
		e := newPinEnv(t)
		lock, code := seamevent.NewID(), seamevent.NewID()
		s1 := e.store(k1)
		e.send(s1, codeEvent(lifecycle.TypeSetOnDevice, code, lock, "480913", e.at(-60)))
		e.send(s1, codeEvent(lifecycle.TypeDeleted, code, lock, "480913", e.at(-30)))
		s2 := e.store(both)
		e.send(s2, unlockByPIN(lock, "480913", e.at(-5)))
		check(t, e, s2, code, "unlock under k2 after the code under k1")

		// rekey moves everything to k2; the evidence holds, with k1 gone,
		// through another event of the code and a replay.
		if _, err := s2.Rekey(e.ctx, postgres.RekeyOptions{}); err != nil {
			t.Fatal(err)
		}
		check(t, e, s2, code, "after rekey")
		s3 := e.store(onlyK2)
		e.send(s3, map[string]any{"event_type": lifecycle.TypeDelayInRemoving, "access_code_id": code, "device_id": lock, "occurred_at": e.at(-1)})
		check(t, e, s3, code, "refolded with k1 removed")
		if _, err := s3.Replay(e.ctx, 100, nil); err != nil {
			t.Fatal(err)
		}
		check(t, e, s3, code, "replayed with k1 removed")
	})
	t.Run("unlock under k1, code under k2", func(t *testing.T) {
		e := newPinEnv(t)
		lock, code := seamevent.NewID(), seamevent.NewID()
		s1 := e.store(k1)
		e.send(s1, unlockByPIN(lock, "480913", e.at(-5)))
		s2 := e.store(both)
		e.send(s2, codeEvent(lifecycle.TypeSetOnDevice, code, lock, "480913", e.at(-60)))
		e.send(s2, codeEvent(lifecycle.TypeDeleted, code, lock, "480913", e.at(-30)))
		check(t, e, s2, code, "the code under k2 after the unlock under k1")
		if _, err := s2.Rekey(e.ctx, postgres.RekeyOptions{}); err != nil {
			t.Fatal(err)
		}
		s3 := e.store(onlyK2)
		e.send(s3, map[string]any{"event_type": lifecycle.TypeDelayInRemoving, "access_code_id": code, "device_id": lock, "occurred_at": e.at(-1)})
		check(t, e, s3, code, "refolded after rekey, k1 removed")
	})
	t.Run("an unmanaged code under k2 with the PIN of a code under k1", func(t *testing.T) {
		e := newPinEnv(t)
		lock, code := seamevent.NewID(), seamevent.NewID()
		s1 := e.store(k1)
		e.send(s1, codeEvent(lifecycle.TypeSetOnDevice, code, lock, "775511", e.at(-60)))
		e.send(s1, codeEvent(lifecycle.TypeDeleted, code, lock, "775511", e.at(-30)))
		s2 := e.store(both)
		e.send(s2, codeEvent(lifecycle.TypeUnmanagedCreated, seamevent.NewID(), lock, "775511", e.at(-2)))
		if c := e.get(s2, code); reasonOf(c) != lifecycle.ReasonStillOnLock {
			t.Fatalf("unmanaged code under k2 with the PIN: %s", reasonOf(c))
		}
	})
	t.Run("another PIN, another lock: nothing", func(t *testing.T) {
		e := newPinEnv(t)
		lock, code := seamevent.NewID(), seamevent.NewID()
		s1 := e.store(k1)
		e.send(s1, codeEvent(lifecycle.TypeSetOnDevice, code, lock, "480913", e.at(-60)))
		e.send(s1, codeEvent(lifecycle.TypeDeleted, code, lock, "480913", e.at(-30)))
		s2 := e.store(both)
		e.send(s2, unlockByPIN(lock, "480914", e.at(-5)))
		e.send(s2, unlockByPIN(seamevent.NewID(), "480913", e.at(-4)))
		e.send(s2, map[string]any{"event_type": lifecycle.TypeDelayInRemoving, "access_code_id": code, "device_id": lock, "occurred_at": e.at(-1)})
		if c := e.get(s2, code); reasonOf(c) != lifecycle.ReasonDelayed {
			t.Fatalf("nothing of the lock's should count: %s", reasonOf(c))
		}
	})
}

// Defect (issue "Never a false all-clear", 4): rekey renewed PIN hashes and
// refolded nothing. Evidence that only rekey makes matchable stayed unseen
// until another event of the code came: a code an older version stored in
// clear (no hash until sealed) and an unlock by its PIN since; the same
// with the unlock in clear too; and rows of a version before tokens, hashed
// under two keys (a rotation before the upgrade). Rekey (and serve's
// start-up pass, which is the same) refolds the codes whose matching its
// new hashes change, and only those.
func TestRekeyRefoldsWhatItMakesMatch(t *testing.T) {
	e := newPinEnv(t)
	e1, e2 := keyEntry(t, "k1"), keyEntry(t, "k2")
	k1, both := ring(t, e1), ring(t, e2, e1)
	// What a version before encryption left, in clear.
	inClear := func(typ, code, lock string, m int) {
		t.Helper()
		f := codeEvent(typ, code, lock, "480913", e.at(m))
		var acid *string
		if code == "" {
			f = unlockByPIN(lock, "480913", e.at(m))
		} else {
			acid = &code
		}
		id := seamevent.NewID()
		f["event_id"] = id
		b, _ := json.Marshal(f)
		if _, err := e.pool.Exec(e.ctx, `INSERT INTO events (message_id, event_id, event_type, access_code_id, device_id, occurred_at, raw)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, seamevent.NewMessageID(), id, typ, acid, lock, e.clock.Now().Add(time.Duration(m)*time.Minute), b); err != nil {
			t.Fatal(err)
		}
	}
	lock, code := seamevent.NewID(), seamevent.NewID()
	inClear(lifecycle.TypeSetOnDevice, code, lock, -60)
	inClear(lifecycle.TypeDeleted, code, lock, -25)
	lock2, code2 := seamevent.NewID(), seamevent.NewID()
	inClear(lifecycle.TypeSetOnDevice, code2, lock2, -60)
	inClear(lifecycle.TypeDeleted, code2, lock2, -25)
	inClear(lifecycle.TypeLockUnlocked, "", lock2, -6)
	// And one that matches nothing: refolding it would be wasted work.
	lock3, code3 := seamevent.NewID(), seamevent.NewID()
	inClear(lifecycle.TypeSetOnDevice, code3, lock3, -60)
	inClear(lifecycle.TypeDeleted, code3, lock3, -25)
	s := e.store(k1)
	if _, err := s.Replay(e.ctx, 100, nil); err != nil {
		t.Fatal(err)
	}
	// The unlock by the first code's PIN arrives before serve's start-up
	// pass sealed the code's events: nothing to match it with yet.
	e.send(s, unlockByPIN(lock, "480913", e.at(-5)))
	for _, c := range []string{code, code2} {
		if c := e.get(s, c); c.DeletionState != lifecycle.AwaitingRemoval || reasonOf(c) != "(none)" {
			t.Fatalf("before the pass: %s %s", c.DeletionState, reasonOf(c))
		}
	}
	res, err := s.Rekey(e.ctx, postgres.RekeyOptions{OnlyClear: true})
	if err != nil || res.Resealed["events"] != 7 {
		t.Fatalf("start-up pass: %+v %v", res, err)
	}
	for _, c := range []string{code, code2} {
		if c := e.get(s, c); reasonOf(c) != lifecycle.ReasonUsedAfterDeletion {
			t.Errorf("after the pass sealed (and hashed) the events: %s, want used_after_deletion", reasonOf(c))
		}
	}
	if res.Refolded != 2 {
		t.Errorf("refolded %d codes, want 2", res.Refolded)
	}
	// Nothing else to do: a full rekey re-seals nothing and refolds nothing.
	if res, err := s.Rekey(e.ctx, postgres.RekeyOptions{}); err != nil || res.Refolded != 0 || res.Resealed["events"] != 0 {
		t.Errorf("second rekey: %+v %v", res, err)
	}

	// A version before tokens, rotated before the upgrade: the code's
	// events under k1, the unlock under k2, each with its own key's hash
	// only. Rekey gives the k1 rows a k2 token, and refolds the code.
	lock4, code4 := seamevent.NewID(), seamevent.NewID()
	e.send(s, codeEvent(lifecycle.TypeSetOnDevice, code4, lock4, "480913", e.at(-60)))
	e.send(s, codeEvent(lifecycle.TypeDeleted, code4, lock4, "480913", e.at(-20)))
	s2 := e.store(both)
	e.send(s2, unlockByPIN(lock4, "775511", e.at(-4))) // another PIN: refolds nothing
	e.send(s2, unlockByPIN(lock4, "480913", e.at(-3)))
	if _, err := e.pool.Exec(e.ctx, `UPDATE events SET pin_tokens = NULL WHERE device_id = $1`, lock4); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(e.ctx, `UPDATE access_codes SET troubleshooting_reason = NULL, trouble_key = NULL,
		needs_troubleshooting = false, troubleshooting_details = NULL WHERE access_code_id = $1`, code4); err != nil {
		t.Fatal(err)
	}
	res, err = s2.Rekey(e.ctx, postgres.RekeyOptions{})
	if err != nil || res.Refolded != 1 {
		t.Fatalf("rekey after a rotation before tokens: %+v %v", res, err)
	}
	if c := e.get(s2, code4); reasonOf(c) != lifecycle.ReasonUsedAfterDeletion {
		t.Errorf("after rekey: %s, want used_after_deletion", reasonOf(c))
	}
}

// Defect (issue "Never a false all-clear", 5): an unlock by a PIN that a
// deleted code and a live code on the same lock share was blamed on the
// deleted code alone: "the code is still on the lock, remove it now", when
// the unlock may well have been the live code (a PIN reused for the next
// guest). It is still used_after_deletion, critical (the deleted code may be
// there too: the unlock cannot tell), but the details, the alert and the
// next step name the live code and ask to check the lock, not to remove.
func TestReusedPINBlamesTheLiveCode(t *testing.T) {
	e := newPinEnv(t)
	s := e.store(nil)
	lock := seamevent.NewID()
	deleted, live, gone, later := seamevent.NewID(), seamevent.NewID(), seamevent.NewID(), seamevent.NewID()
	e.send(s, codeEvent(lifecycle.TypeSetOnDevice, deleted, lock, "480913", e.at(-120)))
	e.send(s, codeEvent(lifecycle.TypeDeleted, deleted, lock, "480913", e.at(-60)))
	e.send(s, codeEvent(lifecycle.TypeSetOnDevice, live, lock, "480913", e.at(-50)))
	e.send(s, unlockByPIN(lock, "480913", e.at(-5)))

	c := e.get(s, deleted)
	if reasonOf(c) != lifecycle.ReasonUsedAfterDeletion || *c.TroubleshootingSeverity != lifecycle.SeverityCritical {
		t.Fatalf("deleted code: %s", reasonOf(c))
	}
	var d struct {
		LockEvent struct {
			MatchedBy string   `json:"matched_by"`
			Live      []string `json:"live_codes_with_same_pin"`
		} `json:"lock_event"`
	}
	if err := json.Unmarshal(c.TroubleshootingDetails, &d); err != nil || d.LockEvent.MatchedBy != "pin" ||
		len(d.LockEvent.Live) != 1 || d.LockEvent.Live[0] != live {
		t.Fatalf("details should name the live code %s: %s", live, c.TroubleshootingDetails)
	}
	if c := e.get(s, live); reasonOf(c) != "(none)" {
		t.Errorf("the live code: %s", reasonOf(c))
	}
	as := usedAlerts(t, e, deleted)
	if len(as) != 1 {
		t.Fatalf("%d trouble alerts: %+v", len(as), as)
	}
	a := as[0]
	for what, text := range map[string]string{"message": a.Message, "next step": a.NextStep} {
		if !strings.Contains(text, live) || strings.Contains(text, "480913") {
			t.Errorf("the alert's %s should name the live code %s: %q", what, live, text)
		}
	}
	if strings.Contains(a.NextStep, "Remove it at the lock now") || !strings.Contains(a.NextStep, "still on the lock") {
		t.Errorf("the next step should ask to check the lock, not to remove: %q", a.NextStep)
	}
	if a.Severity != lifecycle.SeverityCritical {
		t.Errorf("severity %s", a.Severity)
	}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "480913") || strings.Contains(string(a.TroubleshootingDetails), "480913") {
		t.Fatalf("the PIN in the record: %s", b)
	}

	// A code with the same PIN that was deleted before the unlock, or set
	// only after it, could not have been the one: the deleted code is blamed.
	e.send(s, codeEvent(lifecycle.TypeSetOnDevice, gone, lock, "775511", e.at(-120)))
	e.send(s, codeEvent(lifecycle.TypeDeleted, gone, lock, "775511", e.at(-90)))
	e.send(s, codeEvent(lifecycle.TypeSetOnDevice, later, lock, "775511", e.at(-3)))
	other := seamevent.NewID()
	e.send(s, codeEvent(lifecycle.TypeSetOnDevice, other, lock, "775511", e.at(-80)))
	e.send(s, codeEvent(lifecycle.TypeDeleted, other, lock, "775511", e.at(-70)))
	e.send(s, unlockByPIN(lock, "775511", e.at(-4)))
	for _, code := range []string{gone, other} {
		c := e.get(s, code)
		if reasonOf(c) != lifecycle.ReasonUsedAfterDeletion || strings.Contains(string(c.TroubleshootingDetails), "live_codes_with_same_pin") {
			t.Errorf("%s: %s %s: no live code shares the PIN at the unlock", code, reasonOf(c), c.TroubleshootingDetails)
		}
		as := usedAlerts(t, e, code)
		if len(as) != 1 || !strings.Contains(as[0].NextStep, "Remove it at the lock now") {
			t.Errorf("%s: alerts %+v", code, as)
		}
	}
}

// usedAlerts reads code's used_after_deletion alerts from the outbox (a
// deletion an hour old is overdue too).
func usedAlerts(t *testing.T, e *pinEnv, code string) []lifecycle.AlertPayload {
	t.Helper()
	rs, err := e.pool.Query(e.ctx, `SELECT payload::text FROM alerts WHERE access_code_id = $1 AND type = $2
		AND payload->>'troubleshooting_reason' = 'used_after_deletion' ORDER BY sequence`, code, lifecycle.AlertTrouble)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []lifecycle.AlertPayload
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		var a lifecycle.AlertPayload
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}
