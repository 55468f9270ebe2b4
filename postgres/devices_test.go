package postgres_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// sendRaw ingests a Seam-shaped body made of fields.
func (e *swEnv) sendRaw(fields map[string]any) {
	e.t.Helper()
	if _, ok := fields["event_id"]; !ok {
		fields["event_id"] = seamevent.NewID()
	}
	b, _ := json.Marshal(fields)
	res, err := e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: b})
	if err != nil || res.Outcome != lifecycle.Stored {
		e.t.Fatalf("ingest %s: %+v %v", b, res, err)
	}
}

func (e *swEnv) device(id string) *lifecycle.Device {
	e.t.Helper()
	d, err := e.store.GetDevice(e.ctx, id)
	if err != nil {
		e.t.Fatalf("device %s: %v", id, err)
	}
	return d
}

// Locks: named by codes' events, their connectivity folded from their own
// and their account's events, in any order; codes show it.
func TestDevices(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	at := func(m int) string {
		return e.clock.Now().Add(time.Duration(m) * time.Minute).UTC().Format(time.RFC3339Nano)
	}
	lockA, lockB, lockC, acct := seamevent.NewID(), seamevent.NewID(), seamevent.NewID(), seamevent.NewID()
	code := seamevent.NewID()
	// A code on lock A, deleted: lock A exists, connectivity unknown.
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeSetOnDevice, "access_code_id": code, "device_id": lockA,
		"connected_account_id": acct, "occurred_at": at(-60)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeleted, "access_code_id": code, "device_id": lockA,
		"connected_account_id": acct, "occurred_at": at(-10)})
	d := e.device(lockA)
	if d.Online != nil || d.CodesAwaitingRemoval != 1 || len(d.AccessCodes) != 1 || d.AccessCodes[0].AccessCodeID != code {
		t.Fatalf("lock A before any connectivity event: %+v", d)
	}
	// Lock B of the same account reports itself; then the account drops:
	// every lock of the account goes offline.
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeviceConnected, "device_id": lockB, "connected_account_id": acct, "occurred_at": at(-40)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeviceConnected, "device_id": lockC, "occurred_at": at(-40)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeAccountDisconnected, "connected_account_id": acct, "occurred_at": at(-30)})
	for _, id := range []string{lockA, lockB} {
		if d := e.device(id); d.Online == nil || *d.Online || d.ConnectivityErrorCode == nil || *d.ConnectivityErrorCode != "account_disconnected" {
			t.Fatalf("lock %s after the account dropped: %+v", id, d)
		}
	}
	if d := e.device(lockC); d.Online == nil || !*d.Online {
		t.Fatalf("lock C (another account): %+v", d)
	}
	if c := e.get(code); c.LockOnline == nil || *c.LockOnline {
		t.Fatalf("the code's lock_online: %v", c.LockOnline)
	}
	// A late, earlier event changes nothing; a later one does.
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeviceConnected, "device_id": lockA, "occurred_at": at(-35)})
	if d := e.device(lockA); *d.Online {
		t.Fatalf("an earlier connect overrode the later account drop: %+v", d)
	}
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeviceDisconnected, "device_id": lockC, "error_code": "hub_disconnected", "occurred_at": at(-20)})
	if d := e.device(lockC); *d.Online || *d.ConnectivityErrorCode != "hub_disconnected" || !d.OnlineChangedAt.Equal(e.clock.Now().Add(-20*time.Minute)) {
		t.Fatalf("lock C: %+v", d)
	}
	no, yes := false, true
	for _, tc := range []struct {
		f    lifecycle.DeviceFilter
		want int
	}{
		{lifecycle.DeviceFilter{}, 3},
		{lifecycle.DeviceFilter{Online: &no}, 3},
		{lifecycle.DeviceFilter{Online: &yes}, 0},
		{lifecycle.DeviceFilter{HasUnconfirmedDeletions: &yes}, 1},
		{lifecycle.DeviceFilter{HasUnconfirmedDeletions: &no}, 2},
	} {
		got, _, err := e.store.ListDevices(e.ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("filter %+v: %d devices (%v), want %d", tc.f, len(got), err, tc.want)
		}
	}
	// Keyset pages of one: every lock once.
	seen := map[string]bool{}
	var cursor int64
	for {
		page, next, err := e.store.ListDevices(e.ctx, lifecycle.DeviceFilter{Limit: 1, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			if seen[d.DeviceID] {
				t.Fatalf("%s twice", d.DeviceID)
			}
			seen[d.DeviceID] = true
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(seen) != 3 {
		t.Fatalf("paged %d locks", len(seen))
	}
	if _, err := e.store.GetDevice(e.ctx, "nope"); lifecycle.ErrorCode(err) != lifecycle.ENotFound {
		t.Fatalf("unknown lock: %v", err)
	}
	// Overdue on an offline lock: the alert's next step says so.
	e.clock.Advance(25 * time.Minute)
	if res := e.sweep(0); res.Overdue != 1 {
		t.Fatalf("sweep: %+v", res)
	}
	as := alertsOfType(e.alerts(code), lifecycle.AlertTrouble)
	if len(as) != 1 || as[0].Payload.LockOnline == nil || *as[0].Payload.LockOnline || as[0].Payload.Severity != "warning" ||
		!strings.Contains(as[0].Payload.NextStep, "offline since") {
		t.Fatalf("alert: %+v", as)
	}
}

// A lock's report by PIN (no access_code_id) is matched with the deleted
// code on the same lock by keyed hash, whichever arrives first.
func TestLockReportsMatchedByPIN(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	at := func(m int) string {
		return e.clock.Now().Add(time.Duration(m) * time.Minute).UTC().Format(time.RFC3339Nano)
	}
	lock, other := seamevent.NewID(), seamevent.NewID()
	code, early := seamevent.NewID(), seamevent.NewID()
	// The unlock arrives before the code's own events.
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": lock, "code": "480913", "method": "keycode", "occurred_at": at(-5)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeSetOnDevice, "access_code_id": code, "device_id": lock, "code": "480913", "occurred_at": at(-60)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeleted, "access_code_id": code, "device_id": lock, "code": "480913", "occurred_at": at(-30)})
	c := e.get(code)
	if !c.NeedsTroubleshooting || *c.TroubleshootingReason != lifecycle.ReasonUsedAfterDeletion {
		t.Fatalf("unlock by PIN before the code's events: %+v %v", c.TroubleshootingReason, c.NeedsTroubleshooting)
	}
	// After the deletion: another PIN, the same PIN on another lock, the
	// same PIN before the deletion: nothing.
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeSetOnDevice, "access_code_id": early, "device_id": lock, "code": "775511", "occurred_at": at(-60)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeDeleted, "access_code_id": early, "device_id": lock, "code": "775511", "occurred_at": at(-30)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": lock, "code": "111111", "occurred_at": at(-4)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": other, "code": "775511", "occurred_at": at(-4)})
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeLockUnlocked, "device_id": lock, "code": "775511", "occurred_at": at(-40)})
	if c := e.get(early); c.NeedsTroubleshooting {
		t.Fatalf("nothing should flag it: %+v", c.TroubleshootingReason)
	}
	// Its PIN on the lock as an unmanaged code, after the deletion.
	e.sendRaw(map[string]any{"event_type": lifecycle.TypeUnmanagedCreated, "access_code_id": seamevent.NewID(), "device_id": lock, "code": "775511", "occurred_at": at(-2)})
	c = e.get(early)
	if !c.NeedsTroubleshooting || *c.TroubleshootingReason != lifecycle.ReasonStillOnLock || *c.TroubleshootingSeverity != "critical" {
		t.Fatalf("unmanaged with its PIN: %+v", c.TroubleshootingReason)
	}
	// The PIN is nowhere in the code's record.
	b, _ := json.Marshal(e.get(code))
	if strings.Contains(string(b), "480913") {
		t.Fatalf("PIN in the record: %s", b)
	}
	// Replay agrees.
	if _, err := e.pool.Exec(e.ctx, `UPDATE access_codes SET troubleshooting_reason = NULL, trouble_key = NULL, needs_troubleshooting = false`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Replay(e.ctx, 100, nil); err != nil {
		t.Fatal(err)
	}
	if c := e.get(code); *c.TroubleshootingReason != lifecycle.ReasonUsedAfterDeletion {
		t.Fatalf("after replay: %+v", c.TroubleshootingReason)
	}
}

// A removed code the lock used after its deletion is kept by retention
// until someone acknowledges it.
func TestRetentionKeepsACodeUsedAfterDeletion(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	code, lock := seamevent.NewID(), seamevent.NewID()
	t0 := e.clock.Now()
	for i, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice, lifecycle.TypeLockUnlocked} {
		e.sendRaw(map[string]any{"event_type": typ, "access_code_id": code, "device_id": lock,
			"occurred_at": t0.Add(time.Duration(i) * time.Minute).UTC().Format(time.RFC3339Nano)})
	}
	if c := e.get(code); c.DeletionState != lifecycle.Removed || !c.NeedsTroubleshooting {
		t.Fatalf("setup: %s %v", c.DeletionState, c.NeedsTroubleshooting)
	}
	e.clock.Advance(100 * 24 * time.Hour)
	if _, err := e.store.Prune(e.ctx, 90*24*time.Hour, 0, nil); err != nil {
		t.Fatal(err)
	}
	e.get(code) // still there
	if _, _, err := e.store.Acknowledge(e.ctx, code, "ops", "removed at the keypad", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Prune(e.ctx, 90*24*time.Hour, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetAccessCode(e.ctx, code); lifecycle.ErrorCode(err) != lifecycle.ENotFound {
		t.Fatalf("acknowledged and terminal for 100 days, still kept: %v", err)
	}
}

// A lock gains a code per stay: a single-lock read carries its most urgent
// lifecycle.DeviceCodesLimit codes and where the rest start, and the list
// by device continues from there without repeating or skipping one.
func TestDeviceCodesBounded(t *testing.T) {
	e := newSwEnv(t, 30*time.Minute)
	lock := seamevent.NewID()
	const n = lifecycle.DeviceCodesLimit + 7
	all := map[string]bool{}
	for i := range n {
		code := seamevent.NewID()
		all[code] = true
		types := []string{lifecycle.TypeSetOnDevice}
		if i%10 == 0 { // a few needing troubleshooting, listed first
			types = append(types, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove)
		}
		for j, typ := range types {
			e.sendRaw(map[string]any{"event_type": typ, "access_code_id": code, "device_id": lock,
				"workspace_id": "680d7c60-0a92-4e78-85bd-cb45155576b9",
				"occurred_at":  e.clock.Now().Add(time.Duration(i)*time.Second + time.Duration(j)*time.Millisecond).UTC().Format(time.RFC3339Nano)})
		}
	}
	d := e.device(lock)
	if len(d.AccessCodes) != lifecycle.DeviceCodesLimit || d.AccessCodesNext == nil {
		t.Fatalf("a lock with %d codes: %d carried, next %v", n, len(d.AccessCodes), d.AccessCodesNext)
	}
	seen := map[string]bool{}
	for _, c := range d.AccessCodes {
		seen[c.AccessCodeID] = true
	}
	rest, next, err := e.store.ListAccessCodes(e.ctx, lifecycle.ListFilter{DeviceID: lock, Cursor: d.AccessCodesNext, Limit: 500})
	if err != nil || next != nil {
		t.Fatalf("the rest: %v, next %v", err, next)
	}
	for _, c := range rest {
		if seen[c.AccessCodeID] {
			t.Errorf("%s listed twice", c.AccessCodeID)
		}
		seen[c.AccessCodeID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d codes reached", len(seen), n)
	}
	if !d.AccessCodes[0].NeedsTroubleshooting {
		t.Error("the lock's first code is not one needing troubleshooting")
	}
}
