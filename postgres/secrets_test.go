package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// The PIN these tests put in events: unusual enough that finding it
// anywhere is no accident.
const testPIN = "91827364"

// storedRow is one row of events or quarantine as the database holds it.
type storedRow struct {
	table, msg string
	keyID      *string
	raw        []byte
	pinHash    []byte
	pinHint    *string
}

func storedRows(t *testing.T, pool *pgxpool.Pool, table string) []storedRow {
	t.Helper()
	pin := "NULL::bytea, NULL::text"
	if table == "events" {
		pin = "pin_hash, pin_hint"
	}
	rs, err := pool.Query(context.Background(), `SELECT message_id, key_id, raw, `+pin+` FROM `+table+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []storedRow
	for rs.Next() {
		r := storedRow{table: table}
		if err := rs.Scan(&r.msg, &r.keyID, &r.raw, &r.pinHash, &r.pinHint); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (r storedRow) open(keys *datakeys.Keyring) ([]byte, error) {
	return postgres.OpenBody(keys, r.table, r.msg, r.keyID, r.raw)
}

func keyOf(r storedRow) string {
	if r.keyID == nil {
		return "(clear)"
	}
	return *r.keyID
}

// pinEvent builds an access-code event that carries testPIN.
func pinEvent(t *testing.T, typ, code string) (msg string, body []byte) {
	t.Helper()
	id := seamevent.NewID()
	b, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, EventID: id, Code: testPIN,
		DeviceID: "dev-" + code[:8], OccurredAt: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	return "msg_" + id, b
}

func mustIngest(t *testing.T, store *postgres.Store, msg string, body []byte) lifecycle.Result {
	t.Helper()
	res, err := store.Ingest(context.Background(), lifecycle.Delivery{MessageID: msg, Body: body})
	if err != nil {
		t.Fatalf("ingest %s: %v", msg, err)
	}
	return res
}

// Every body is stored sealed under the first key, bound to its row, and
// opens to exactly the bytes received; an event's PIN is kept only as a
// keyed hash and a hint; details stored in clear have PINs masked.
func TestBodiesAreSealedAtRest(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	keys := storetest.Keys(t, "k1")
	store := newStoreT(t, pool, postgres.Config{Keys: keys, RemovalTimeout: time.Hour})
	code := seamevent.NewID()
	sent := map[string][]byte{}
	for _, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted} {
		msg, body := pinEvent(t, typ, code)
		sent[msg] = body
		if res := mustIngest(t, store, msg, body); res.Outcome != lifecycle.Stored {
			t.Fatalf("%s: %+v", typ, res)
		}
	}
	// A failure whose Seam error carries a PIN field: details are stored in
	// clear (they feed the API and alerts), so it is masked there.
	failBody := []byte(`{"event_id":"` + seamevent.NewID() + `","event_type":"access_code.failed_to_remove_from_device",
		"access_code_id":"` + code + `","device_id":"dev-` + code[:8] + `","occurred_at":"` + time.Now().UTC().Format(time.RFC3339) + `",
		"access_code_errors":[{"error_code":"failed_to_remove_from_device","message":"Failed.","code":"` + testPIN + `"}]}`)
	sent["msg_fail"] = failBody
	mustIngest(t, store, "msg_fail", failBody)
	// Quarantined: no access_code_id.
	qBody := []byte(`{"event_id":"q1","event_type":"access_code.set_on_device","code":"` + testPIN + `"}`)
	if res := mustIngest(t, store, "msg_q", qBody); res.Outcome != lifecycle.Quarantined {
		t.Fatalf("quarantine: %+v", res)
	}

	_, wantHash := keys.PinHash(testPIN)
	for _, r := range append(storedRows(t, pool, "events"), storedRows(t, pool, "quarantine")...) {
		if r.keyID == nil || *r.keyID != "k1" {
			t.Errorf("%s %s: key_id %s, want k1", r.table, r.msg, keyOf(r))
		}
		if bytes.Contains(r.raw, []byte(testPIN)) || bytes.Contains(r.raw, []byte("event_type")) {
			t.Errorf("%s %s: raw is readable: %q", r.table, r.msg, r.raw)
		}
		body, err := r.open(keys)
		if err != nil {
			t.Fatalf("%s %s: %v", r.table, r.msg, err)
		}
		want := sent[r.msg]
		if r.table == "quarantine" {
			want = qBody
		}
		if !bytes.Equal(body, want) {
			t.Errorf("%s %s: opened body differs:\n%s\n%s", r.table, r.msg, body, want)
		}
		if r.table != "events" {
			continue
		}
		if pin, ok := datakeys.ExtractPIN(body); ok && pin == testPIN {
			if !bytes.Equal(r.pinHash, wantHash) || r.pinHint == nil || *r.pinHint != "••64" {
				t.Errorf("event %s carries the PIN: pin_hash %x hint %v, want %x and ••64", r.msg, r.pinHash, r.pinHint, wantHash)
			}
			if !keys.MatchPIN(testPIN, *r.keyID, r.pinHash) || keys.MatchPIN("91827365", *r.keyID, r.pinHash) {
				t.Errorf("event %s: the hash does not tell the PIN from another", r.msg)
			}
		} else if r.pinHash != nil || r.pinHint != nil {
			t.Errorf("event %s carries no PIN but has pin columns %x %v", r.msg, r.pinHash, r.pinHint)
		}
	}
	// A ciphertext moved to another row (the AAD binds it) does not open.
	ev := storedRows(t, pool, "events")
	moved := storedRow{table: "events", msg: ev[1].msg, keyID: ev[0].keyID, raw: ev[0].raw}
	if _, err := moved.open(keys); !errors.Is(err, datakeys.ErrAuth) {
		t.Errorf("a body moved to another row opened: %v", err)
	}
	var details string
	if err := pool.QueryRow(ctx, `SELECT details::text FROM events WHERE message_id = 'msg_fail'`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(details, testPIN) || !strings.Contains(details, `"code": "••64"`) {
		t.Errorf("details stored in clear: %s", details)
	}
	c, err := store.GetAccessCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if c.PinHint == nil || *c.PinHint != "••64" || len(c.Events) != 3 || c.Events[0].PinHint == nil || c.Events[2].PinHint != nil {
		t.Errorf("access code hints: %v, events %+v", c.PinHint, c.Events)
	}
	if strings.Contains(string(c.TroubleshootingDetails), testPIN) {
		t.Errorf("troubleshooting_details: %s", c.TroubleshootingDetails)
	}
	q, _, err := store.ListQuarantine(ctx, 10, 0)
	if err != nil || len(q) != 1 || q[0].Body == nil || q[0].SizeBytes != len(qBody) || q[0].BodyUnavailable != nil {
		t.Fatalf("quarantine list: %+v %v", q, err)
	}
	if strings.Contains(*q[0].Body, testPIN) || !strings.Contains(*q[0].Body, `"code":"••64"`) {
		t.Errorf("quarantine list body: %s", *q[0].Body)
	}
	// A ciphertext copied over another quarantined row shows as
	// unavailable, never as the other row's body.
	mustIngest(t, store, "msg_q2", []byte(`{"event_id":"q2"}`))
	if _, err := pool.Exec(ctx, `UPDATE quarantine SET raw = (SELECT raw FROM quarantine WHERE message_id = 'msg_q')
		WHERE message_id = 'msg_q2'`); err != nil {
		t.Fatal(err)
	}
	q, _, err = store.ListQuarantine(ctx, 10, 0)
	if err != nil || len(q) != 2 || q[0].Body != nil || q[0].BodyUnavailable == nil || !strings.Contains(*q[0].BodyUnavailable, "moved") {
		t.Fatalf("quarantine list with a moved body: %+v %v", q, err)
	}
	// A store without keys neither ingests nor retries (and says why).
	bare := postgres.New(pool, storetest.Inserter(t, pool), postgres.Config{})
	bare.Start()
	defer bare.Close()
	if _, err := bare.Ingest(ctx, lifecycle.Delivery{MessageID: "m", Body: qBody}); err == nil || !strings.Contains(err.Error(), "CODEWATCH_DATA_KEYS") {
		t.Errorf("ingest without keys: %v", err)
	}
	if _, err := bare.RetryQuarantine(ctx, postgres.QuarantineRetry{}, nil); err == nil {
		t.Error("quarantine retry without keys succeeded")
	}
}

// Rotation: rows under the old key and the new one, and rows stored in
// clear by a version before encryption, all readable and PIN-matchable with
// both keys configured; `rekey` moves every one to the new key; restarted
// with the old key removed, everything still works; restarted with only
// the old key, nothing is shown in its place.
func TestRekeyAndRotation(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	e1, e2 := keyEntry(t, "k1"), keyEntry(t, "k2")
	k1, both, onlyK2 := ring(t, e1), ring(t, e2, e1), ring(t, e2)

	sent := map[string][]byte{}
	devices := map[string]string{} // code -> device
	ingestPIN := func(store *postgres.Store, code string, types ...string) {
		t.Helper()
		for _, typ := range types {
			msg, body := pinEvent(t, typ, code)
			sent[msg] = body
			mustIngest(t, store, msg, body)
		}
		devices[code] = "dev-" + code[:8]
	}
	// Before the rotation: under k1 alone.
	s1 := newStoreT(t, pool, postgres.Config{Keys: k1, RemovalTimeout: time.Hour})
	c1, c2 := seamevent.NewID(), seamevent.NewID()
	ingestPIN(s1, c1, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted)
	ingestPIN(s1, c2, lifecycle.TypeSetOnDevice)
	mustIngest(t, s1, "msg_q_k1", []byte(`{"event_id":"qk1","event_type":"access_code.set_on_device","code":"`+testPIN+`"}`))
	sent["msg_q_k1"] = []byte(`{"event_id":"qk1","event_type":"access_code.set_on_device","code":"` + testPIN + `"}`)
	// Rows an older version stored in clear (key_id NULL).
	cClear := seamevent.NewID()
	clearMsg, clearBody := pinEvent(t, lifecycle.TypeSetOnDevice, cClear)
	sent[clearMsg] = clearBody
	devices[cClear] = "dev-" + cClear[:8]
	if _, err := pool.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, access_code_id, device_id, raw)
		VALUES ($1, $2, 'access_code.set_on_device', $3, $4, $5)`, clearMsg, "clear-"+cClear, cClear, devices[cClear], clearBody); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO access_codes (access_code_id, device_id) VALUES ($1, $2)`, cClear, devices[cClear]); err != nil {
		t.Fatal(err)
	}
	oldQ := []byte(`{"event_id":"q-old","event_type":"access_code.deleted","occurred_at":"yesterday","code":"` + testPIN + `"}`)
	sent["msg_q_clear"] = oldQ
	if _, err := pool.Exec(ctx, `INSERT INTO quarantine (message_id, reason, raw) VALUES ('msg_q_clear', 'invalid_occurred_at', $1)`, oldQ); err != nil {
		t.Fatal(err)
	}

	// During the rotation: k2 seals, k1 still opens.
	s2 := newStoreT(t, pool, postgres.Config{Keys: both, RemovalTimeout: time.Hour})
	c3 := seamevent.NewID()
	ingestPIN(s2, c3, lifecycle.TypeSetOnDevice)
	ingestPIN(s2, c2, lifecycle.TypeDeleted) // c2 now has events under both keys
	byKey := func() map[string]int {
		n := map[string]int{}
		for _, tb := range []string{"events", "quarantine"} {
			for _, r := range storedRows(t, pool, tb) {
				n[keyOf(r)]++
			}
		}
		return n
	}
	if n := byKey(); n["k1"] != 4 || n["k2"] != 2 || n["(clear)"] != 2 {
		t.Fatalf("rows per key before rekey: %v", n)
	}
	// Matching works across keys (PinHashes); the clear row has no hash
	// yet.
	for code, want := range map[string]bool{c1: true, c2: true, c3: true, cClear: false} {
		got, err := s2.CodesWithPIN(ctx, devices[code], testPIN)
		if err != nil || (len(got) == 1 && got[0] == code) != want {
			t.Errorf("CodesWithPIN(%s) during the rotation: %v %v, want match %v", code, got, err, want)
		}
		if got, _ := s2.CodesWithPIN(ctx, devices[code], "11112222"); len(got) != 0 {
			t.Errorf("another PIN matched %v", got)
		}
	}
	// A redelivery of a body stored under k1 is a duplicate.
	for msg, body := range sent {
		if strings.HasPrefix(msg, "msg_q") || msg == clearMsg {
			continue
		}
		if res := mustIngest(t, s2, msg, body); res.Outcome != lifecycle.Duplicate {
			t.Fatalf("redelivery of %s under k2,k1: %+v", msg, res)
		}
		break
	}

	// rekey, with small batches and progress.
	var progress []postgres.RekeyProgress
	res, err := s2.Rekey(ctx, postgres.RekeyOptions{BatchSize: 2, Progress: func(p postgres.RekeyProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	if res.Resealed["events"] != 4 || res.Resealed["quarantine"] != 2 || len(res.Unreadable) != 0 {
		t.Errorf("rekey result: %+v", res)
	}
	if len(progress) < 3 || progress[len(progress)-1] != (postgres.RekeyProgress{Table: "quarantine", Done: 2, Total: 2}) {
		t.Errorf("progress: %+v", progress)
	}
	if n := byKey(); n["k2"] != 8 || len(n) != 1 {
		t.Fatalf("rows per key after rekey: %v", n)
	}
	usage, err := s2.KeyUsage(ctx)
	if err != nil || usage["events"]["k2"] != 6 || usage["quarantine"]["k2"] != 2 || len(usage["events"]) != 1 || len(usage["quarantine"]) != 1 {
		t.Errorf("key usage: %v %v", usage, err)
	}
	// Nothing left: a second rekey does nothing.
	if res, err := s2.Rekey(ctx, postgres.RekeyOptions{}); err != nil || res.Resealed["events"]+res.Resealed["quarantine"] != 0 {
		t.Errorf("second rekey: %+v %v", res, err)
	}

	// Restart with k1 removed.
	s3 := newStoreT(t, pool, postgres.Config{Keys: onlyK2, RemovalTimeout: time.Hour})
	_, k2Hash := onlyK2.PinHash(testPIN)
	for _, tb := range []string{"events", "quarantine"} {
		for _, r := range storedRows(t, pool, tb) {
			body, err := r.open(onlyK2)
			if err != nil || !bytes.Equal(body, sent[r.msg]) {
				t.Errorf("%s %s after rekey, k1 removed: %v", tb, r.msg, err)
			}
			if tb == "events" && (!bytes.Equal(r.pinHash, k2Hash) || r.pinHint == nil || *r.pinHint != "••64") {
				t.Errorf("event %s: pin hash not renewed under k2", r.msg)
			}
		}
	}
	for _, code := range []string{c1, c2, c3, cClear} {
		if got, err := s3.CodesWithPIN(ctx, devices[code], testPIN); err != nil || len(got) != 1 || got[0] != code {
			t.Errorf("CodesWithPIN(%s) with k2 alone: %v %v", code, got, err)
		}
	}
	for msg, body := range sent {
		res := mustIngest(t, s3, msg, body)
		if res.Outcome != lifecycle.Duplicate {
			t.Errorf("redelivery of %s after the rotation: %+v", msg, res)
		}
	}
	q, _, err := s3.ListQuarantine(ctx, 10, 0)
	if err != nil || len(q) != 2 {
		t.Fatalf("quarantine after the rotation: %+v %v", q, err)
	}
	for _, d := range q {
		if d.Body == nil || d.BodyUnavailable != nil || strings.Contains(*d.Body, testPIN) {
			t.Errorf("quarantined %s after the rotation: body %v unavailable %v", d.MessageID, d.Body, d.BodyUnavailable)
		}
	}
	// The upgraded quarantine row (in clear before) is retried from its
	// sealed body: still unusable, its reason renewed.
	if r, err := s3.RetryQuarantine(ctx, postgres.QuarantineRetry{}, nil); err != nil || r.Unusable != 2 {
		t.Errorf("quarantine retry after the rotation: %+v %v", r, err)
	}

	// With only the removed key: bodies are unavailable, never wrong;
	// rekey says which key it needs; a redelivery it cannot compare is kept.
	s4 := newStoreT(t, pool, postgres.Config{Keys: k1, RemovalTimeout: time.Hour})
	q, _, err = s4.ListQuarantine(ctx, 10, 0)
	if err != nil || len(q) != 2 || q[0].Body != nil || q[0].BodyUnavailable == nil || !strings.Contains(*q[0].BodyUnavailable, `"k2"`) {
		t.Fatalf("quarantine with the wrong key: %+v %v", q, err)
	}
	res, err = s4.Rekey(ctx, postgres.RekeyOptions{})
	if err == nil || res.Unreadable["k2"] != 8 || !strings.Contains(err.Error(), `8 under key "k2"`) {
		t.Errorf("rekey without the key the rows need: %+v %v", res, err)
	}
	if res := mustIngest(t, s4, "msg_q_k1", sent["msg_q_k1"]); res.Outcome != lifecycle.Quarantined || res.Reason != lifecycle.QuarantineMessageIDReused {
		t.Errorf("redelivery that cannot be compared: %+v", res)
	}
}

// keyEntry is a fresh CODEWATCH_DATA_KEYS entry; ring parses entries as
// CODEWATCH_DATA_KEYS, the first sealing.
func keyEntry(t *testing.T, id string) string {
	t.Helper()
	e, err := datakeys.Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ring(t *testing.T, entries ...string) *datakeys.Keyring {
	t.Helper()
	kr, err := datakeys.Parse(strings.Join(entries, ","))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Rekey is safe while the service runs: ingest goes on meanwhile (two
// rekeys sharing the work), nothing is lost or left under the old key, and
// a row another transaction holds locked is skipped, not waited for, and
// taken up by a later rekey.
func TestRekeyWhileIngesting(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	e1, e2 := keyEntry(t, "k1"), keyEntry(t, "k2")
	k1, k2, both := ring(t, e1), ring(t, e2), ring(t, e2, e1)
	old := newStoreT(t, pool, postgres.Config{Keys: k1, RemovalTimeout: time.Hour})
	sent := sync.Map{}
	for i := 0; i < 300; i++ {
		msg, body := pinEvent(t, lifecycle.TypeSetOnDevice, seamevent.NewID())
		sent.Store(msg, body)
		mustIngest(t, old, msg, body)
	}
	s := newStoreT(t, pool, postgres.Config{Keys: both, RemovalTimeout: time.Hour})

	// One row locked by another transaction for the first rekey's length.
	lockTx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lockedMsg string
	if err := lockTx.QueryRow(ctx, `SELECT message_id FROM events ORDER BY id LIMIT 1 FOR UPDATE`).Scan(&lockedMsg); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var ingested sync.WaitGroup
	for w := 0; w < 4; w++ {
		ingested.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				msg, body := pinEvent(t, lifecycle.TypeSetOnDevice, seamevent.NewID())
				sent.Store(msg, body)
				if _, err := s.Ingest(ctx, lifecycle.Delivery{MessageID: msg, Body: body}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var rekeys sync.WaitGroup
	results := make([]postgres.RekeyResult, 2)
	start := time.Now()
	for i := range results {
		rekeys.Go(func() {
			r, err := s.Rekey(ctx, postgres.RekeyOptions{BatchSize: 7})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	rekeys.Wait()
	close(stop)
	ingested.Wait()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("rekey took %s with one row locked: it waited", d)
	}
	if n := results[0].Resealed["events"] + results[1].Resealed["events"]; n != 299 {
		t.Errorf("two rekeys re-sealed %d events, want the 299 unlocked ones once each (%+v)", n, results)
	}
	rows := storedRows(t, pool, "events")
	for _, r := range rows {
		want := "k2"
		if r.msg == lockedMsg {
			want = "k1"
		}
		if keyOf(r) != want {
			t.Errorf("event %s under %s, want %s", r.msg, keyOf(r), want)
		}
	}
	if err := lockTx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Rekey(ctx, postgres.RekeyOptions{}); err != nil || r.Resealed["events"] != 1 {
		t.Errorf("rekey after the lock is gone: %+v %v", r, err)
	}
	n := 0
	for _, r := range storedRows(t, pool, "events") {
		n++
		want, ok := sent.Load(r.msg)
		body, err := r.open(k2)
		if !ok || err != nil || !bytes.Equal(body, want.([]byte)) || keyOf(r) != "k2" {
			t.Errorf("event %s: under %s, opens %v, as sent %v", r.msg, keyOf(r), err, ok && bytes.Equal(body, want.([]byte)))
		}
	}
	total := 0
	sent.Range(func(any, any) bool { total++; return true })
	if n != total {
		t.Errorf("%d events stored, %d sent", n, total)
	}
}

// Serve's start-up pass (OnlyClear) seals bodies stored in clear and
// nothing else: rows under an older key wait for `codewatch rekey`.
func TestSealOnlyClearBodies(t *testing.T) {
	pool := pgtest.New(t)
	ctx := context.Background()
	e1, e2 := keyEntry(t, "k1"), keyEntry(t, "k2")
	k1, both := ring(t, e1), ring(t, e2, e1)
	mustIngest(t, newStoreT(t, pool, postgres.Config{Keys: k1}), "msg_k1", []byte(`{"event_id":"e1","event_type":"device.connected"}`))
	for i := 0; i < 5; i++ {
		if _, err := pool.Exec(ctx, `INSERT INTO events (message_id, event_id, event_type, raw) VALUES ($1, $2, 'lock.unlocked', $3)`,
			fmt.Sprintf("msg_clear_%d", i), fmt.Sprintf("clear_%d", i), []byte(`{"code":"`+testPIN+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	s := newStoreT(t, pool, postgres.Config{Keys: both})
	res, err := s.Rekey(ctx, postgres.RekeyOptions{OnlyClear: true, BatchSize: 2})
	if err != nil || res.Resealed["events"] != 5 {
		t.Fatalf("sealing clear bodies: %+v %v", res, err)
	}
	for _, r := range storedRows(t, pool, "events") {
		want := "k2"
		if r.msg == "msg_k1" {
			want = "k1"
		}
		if keyOf(r) != want {
			t.Errorf("%s under %s, want %s", r.msg, keyOf(r), want)
		}
		if want == "k2" && (r.pinHint == nil || *r.pinHint != "••64") {
			t.Errorf("%s: a sealed clear row gets its PIN columns too: %v", r.msg, r.pinHint)
		}
	}
}
