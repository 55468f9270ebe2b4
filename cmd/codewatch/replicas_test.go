package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// A replica test plan: codes in categories whose alerts do not depend on
// which replica gets which event first, so the expected alerts are exact.

type plannedEvent struct {
	Code, Type, EventID, MsgID string
	OccurredAt                 time.Time
	Body                       []byte
	Device                     string
	Phase                      int
	// Target is 0 or 1 (one replica) or 2 (the same message to both at once).
	Target int
	// Resend: Svix retries the same message later at the other replica.
	Resend bool
	// AltMsgID: the same event (same event_id) delivered again under
	// another message id, which must be a duplicate.
	AltMsgID string
}

type codePlan struct {
	ID, Category string
	Events       []*plannedEvent
	// WantAlerts is type/reason in order; Phase1Alerts of them come before
	// the phase 2 events are sent.
	WantAlerts   []string
	Phase1Alerts int
	WantState    lifecycle.DeletionState
}

type replicaPlan struct {
	Codes  []*codePlan
	Events []*plannedEvent
	byCode map[string]*codePlan
}

const replicaRemovalTimeout = 3 * time.Second

func newReplicaPlan(t *testing.T, rng *rand.Rand, now time.Time) *replicaPlan {
	t.Helper()
	p := &replicaPlan{byCode: map[string]*codePlan{}}
	// Codes that must never go overdue during the test have their events
	// dated an hour ahead (a skewed clock at Seam); the overdue ones are
	// deleted a second from now, as the servers start, so most are flagged
	// by a sweeper rather than on arrival.
	future := now.Add(time.Hour).UTC().Truncate(time.Millisecond)
	present := now.Add(time.Second).UTC().Truncate(time.Millisecond)
	trouble := func(reason string) string { return lifecycle.AlertTrouble + "/" + reason }
	resolved := lifecycle.AlertResolved + "/"
	type step struct {
		typ   string
		phase int
	}
	cats := []struct {
		name   string
		n      int
		base   time.Time
		steps  []step
		alerts []string
		p1     int
		state  lifecycle.DeletionState
	}{
		{"removed", 40, future, []step{{"access_code.created", 1}, {"access_code.set_on_device", 1}, {"access_code.deleted", 1}, {"access_code.removed_from_device", 1}},
			nil, 0, lifecycle.Removed},
		{"failed", 30, future, []step{{"access_code.created", 1}, {"access_code.set_on_device", 1}, {"access_code.deleted", 1}, {"access_code.failed_to_remove_from_device", 1}},
			[]string{trouble(lifecycle.ReasonFailed)}, 1, lifecycle.Failed},
		{"not_programmed", 15, future, []step{{"access_code.created", 1}, {"access_code.deleted", 1}},
			nil, 0, lifecycle.DeletedNotProgrammed},
		// No access_code.created here: a created that arrives after an
		// overdue deletion and before its set_on_device makes the code
		// deleted_not_programmed for a while (resolved, then overdue
		// again), which is the fold of what had arrived but not an
		// alert sequence independent of delivery order.
		{"overdue", 25, present, []step{{"access_code.set_on_device", 1}, {"access_code.deleted", 1}},
			[]string{trouble(lifecycle.ReasonOverdue)}, 1, lifecycle.AwaitingRemoval},
		{"overdue_then_removed", 10, present, []step{{"access_code.set_on_device", 1}, {"access_code.deleted", 1}, {"access_code.removed_from_device", 2}},
			[]string{trouble(lifecycle.ReasonOverdue), resolved}, 1, lifecycle.Removed},
		{"delayed_then_removed", 15, future, []step{{"access_code.set_on_device", 1}, {"access_code.deleted", 1}, {"access_code.delay_in_removing_from_device", 1}, {"access_code.removed_from_device", 2}},
			[]string{trouble(lifecycle.ReasonDelayed), resolved}, 1, lifecycle.Removed},
	}
	for _, c := range cats {
		for i := 0; i < c.n; i++ {
			cp := &codePlan{ID: seamevent.NewID(), Category: c.name, WantAlerts: c.alerts, Phase1Alerts: c.p1, WantState: c.state}
			device := seamevent.NewID()
			for j, st := range c.steps {
				at := c.base.Add(time.Duration(j) * 100 * time.Millisecond)
				if st.phase == 2 {
					// Confirmed later than anything before it.
					at = c.base.Add(time.Minute)
					if c.base.Equal(present) {
						at = present.Add(30 * time.Second)
					}
				}
				ev := &plannedEvent{Code: cp.ID, Type: st.typ, EventID: seamevent.NewID(), MsgID: seamevent.NewMessageID(),
					OccurredAt: at, Device: device, Phase: st.phase, Target: rng.IntN(3)}
				if ev.Target == 2 && rng.IntN(2) == 0 {
					ev.Target = rng.IntN(2) // about one in six sent to both at once
				}
				switch r := rng.IntN(20); {
				case r == 0 && ev.Target != 2:
					ev.AltMsgID = seamevent.NewMessageID()
				case r == 1:
					ev.Resend = true
				}
				body, err := seamevent.Build(ev.Type, seamevent.Options{EventID: ev.EventID, AccessCodeID: cp.ID, DeviceID: device, OccurredAt: at})
				if err != nil {
					t.Fatal(err)
				}
				ev.Body = body
				cp.Events = append(cp.Events, ev)
				p.Events = append(p.Events, ev)
			}
			p.Codes = append(p.Codes, cp)
			p.byCode[cp.ID] = cp
		}
	}
	return p
}

// fold is lifecycle.Fold of what was sent for the code.
func (cp *codePlan) fold() lifecycle.State {
	evs := make([]lifecycle.Event, 0, len(cp.Events))
	for _, e := range cp.Events {
		var details json.RawMessage
		if strings.Contains(e.Type, "failed_to_remove") || strings.Contains(e.Type, "delay_in_removing") {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(e.Body, &m)
			d := map[string]json.RawMessage{}
			for _, k := range []string{"access_code_errors", "access_code_warnings", "device_errors", "device_warnings",
				"connected_account_errors", "connected_account_warnings"} {
				if v, ok := m[k]; ok {
					d[k] = v
				}
			}
			details, _ = json.Marshal(d)
		}
		evs = append(evs, lifecycle.Event{EventID: e.EventID, Type: e.Type, OccurredAt: e.OccurredAt,
			WorkspaceID: "680d7c60-0a92-4e78-85bd-cb45155576b9", AccessCodeID: e.Code, DeviceID: e.Device,
			ConnectedAccountID: "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a", Details: details})
	}
	return lifecycle.Fold(evs)
}

// flowResult is what one run of the plan left behind.
type flowResult struct {
	codes   map[string]lifecycle.AccessCode
	alerts  []sinkAlert
	doubles int // messages sent to both replicas at once
	resends int
	alts    int
	elapsed time.Duration
}

// postSigned posts one signed delivery; it returns the status and whether
// the reply said duplicate.
func postSigned(client *http.Client, s *server, msgID string, body []byte) (int, bool, error) {
	snd := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret, Client: client}
	rep, err := snd.Send(context.Background(), msgID, body)
	if err != nil {
		return 0, false, err
	}
	var r struct {
		Duplicate bool `json:"duplicate"`
	}
	_ = json.Unmarshal(rep.Body, &r)
	return rep.Status, r.Duplicate, nil
}

// runPlan drives servers (one, or two replicas) through the plan and waits
// until every expected alert arrived at rec and a quiet period passed.
func runPlan(t *testing.T, servers []*server, rec *alertRecorder, plan *replicaPlan, rng *rand.Rand) flowResult {
	t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var res flowResult
	var mu sync.Mutex
	pick := func(target int) *server { return servers[target%len(servers)] }
	other := func(target int) *server { return servers[(target+1)%len(servers)] }

	deliver := func(ev *plannedEvent) {
		if ev.Target == 2 && len(servers) == 2 {
			// The same message to both replicas at the same instant.
			type out struct {
				status int
				dup    bool
				err    error
			}
			var outs [2]out
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for i := range 2 {
				wg.Go(func() {
					<-gate
					outs[i].status, outs[i].dup, outs[i].err = postSigned(client, servers[i], ev.MsgID, ev.Body)
				})
			}
			close(gate)
			wg.Wait()
			firsts := 0
			for i, o := range outs {
				if o.err != nil || o.status != http.StatusOK {
					t.Errorf("message %s to replica %d: %d %v", ev.MsgID, i, o.status, o.err)
				}
				if !o.dup {
					firsts++
				}
			}
			if firsts != 1 {
				t.Errorf("message %s sent to both replicas at once: %d replies said stored, want exactly 1", ev.MsgID, firsts)
			}
			mu.Lock()
			res.doubles++
			mu.Unlock()
		} else {
			st, dup, err := postSigned(client, pick(ev.Target), ev.MsgID, ev.Body)
			if err != nil || st != http.StatusOK || dup {
				t.Errorf("message %s (%s): %d duplicate=%v %v", ev.MsgID, ev.Type, st, dup, err)
			}
		}
		if ev.AltMsgID != "" {
			// Same event_id under a new message id: stored already.
			st, dup, err := postSigned(client, other(ev.Target), ev.AltMsgID, ev.Body)
			if err != nil || st != http.StatusOK || !dup {
				t.Errorf("event %s again under message %s: %d duplicate=%v %v", ev.EventID, ev.AltMsgID, st, dup, err)
			}
			mu.Lock()
			res.alts++
			mu.Unlock()
		}
	}
	sendPhase := func(phase int) {
		var evs []*plannedEvent
		for _, e := range plan.Events {
			if e.Phase == phase {
				evs = append(evs, e)
			}
		}
		rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		ch := make(chan *plannedEvent)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for ev := range ch {
					deliver(ev)
				}
			})
		}
		for _, ev := range evs {
			ch <- ev
		}
		close(ch)
		wg.Wait()
		// Svix retries some messages later, at the other replica.
		for _, ev := range evs {
			if !ev.Resend {
				continue
			}
			st, dup, err := postSigned(client, other(ev.Target), ev.MsgID, ev.Body)
			if err != nil || st != http.StatusOK || !dup {
				t.Errorf("retry of message %s: %d duplicate=%v %v", ev.MsgID, st, dup, err)
			}
			res.resends++
		}
	}
	waitAlerts := func(phase1 bool) {
		waitFor(t, 30*time.Second, "the expected alerts", func() bool {
			got := map[string]int{}
			for _, a := range rec.alerts("") {
				got[a.Code]++
			}
			for _, cp := range plan.Codes {
				want := len(cp.WantAlerts)
				if phase1 {
					want = cp.Phase1Alerts
				}
				if got[cp.ID] < want {
					return false
				}
			}
			return true
		})
	}

	sendPhase(1)
	waitAlerts(true)
	sendPhase(2)
	waitAlerts(false)
	// Several sweeps and dispatcher polls on every replica: nothing more.
	time.Sleep(2 * time.Second)
	res.alerts = rec.alerts("")
	res.elapsed = time.Since(start)

	// Every replica reads the same states.
	for i, s := range servers {
		var list struct {
			AccessCodes []lifecycle.AccessCode `json:"access_codes"`
			NextCursor  *string                `json:"next_cursor"`
		}
		if st := s.api(http.MethodGet, "/v1/access_codes?limit=500", s.Token, nil, &list); st != http.StatusOK || list.NextCursor != nil {
			t.Fatalf("%s: list: %d, next_cursor %v", s.name, st, list.NextCursor)
		}
		codes := map[string]lifecycle.AccessCode{}
		for _, c := range list.AccessCodes {
			codes[c.AccessCodeID] = c
		}
		if i == 0 {
			res.codes = codes
			continue
		}
		for id, c := range codes {
			if a := res.codes[id]; a.DeletionState != c.DeletionState || a.NeedsTroubleshooting != c.NeedsTroubleshooting || !a.UpdatedAt.Equal(c.UpdatedAt) {
				t.Errorf("replicas disagree on %s: %s/%v vs %s/%v", id, a.DeletionState, a.NeedsTroubleshooting, c.DeletionState, c.NeedsTroubleshooting)
			}
		}
	}
	return res
}

// codeSummary is the part of a code's state compared across runs.
func codeSummary(c lifecycle.AccessCode) string {
	reason := "-"
	if c.TroubleshootingReason != nil {
		reason = *c.TroubleshootingReason
	}
	onDevice := "?"
	if c.OnDevice != nil {
		onDevice = fmt.Sprint(*c.OnDevice)
	}
	dev := ""
	if c.DeviceID != nil {
		dev = *c.DeviceID
	}
	return fmt.Sprintf("%s on_device=%s needs=%v reason=%s device=%s created=%s set=%s deleted=%s removed=%s last=%s",
		c.DeletionState, onDevice, c.NeedsTroubleshooting, reason, dev, ptrTime(c.CreatedAt), ptrTime(c.SetOnDeviceAt),
		ptrTime(c.DeletedAt), ptrTime(c.RemovedFromDeviceAt), ptrTime(c.LastEventAt))
}

// foldSummary is codeSummary of what lifecycle.Fold and Assess say, at a
// time after every overdue deletion is due and before any future one is.
func foldSummary(st lifecycle.State, now time.Time) string {
	flag := lifecycle.Assess(st.Summary(), now, replicaRemovalTimeout)
	c := lifecycle.AccessCode{DeletionState: st.DeletionState, OnDevice: st.OnDevice, NeedsTroubleshooting: flag != nil,
		DeviceID: &st.DeviceID, CreatedAt: st.CreatedAt, SetOnDeviceAt: st.SetOnDeviceAt, DeletedAt: st.DeletedAt,
		RemovedFromDeviceAt: st.RemovedFromDeviceAt, LastEventAt: st.LastEventAt}
	if flag != nil {
		c.TroubleshootingReason = &flag.Reason
	}
	return codeSummary(c)
}

// Two replicas on one database against one replica: the same events give
// the same states, every event is stored once, every alert is sent once.
func TestReplicasShareOneDatabase(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	sinkEnv := func(env serveEnv, rec *alertRecorder, secret string) {
		env["CODEWATCH_REMOVAL_TIMEOUT"] = replicaRemovalTimeout.String()
		env["CODEWATCH_SWEEP_INTERVAL"] = "200ms"
		env["CODEWATCH_ALERT_REPEAT"] = "0"
		env["CODEWATCH_ALERT_WEBHOOK_URL"] = rec.URL()
		env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = secret
	}
	// Two replicas on a fresh database, started at the same instant (so
	// they race to migrate it), and one replica on its own database.
	replDB := freshDatabase(t)
	replSecret := newWebhookSecret()
	replRec := newWebhookRecorder(t, replSecret)
	envA := newServeEnv(t, replDB)
	sinkEnv(envA, replRec, replSecret)
	envB := serveEnv{}
	for k, v := range envA {
		envB[k] = v
	}
	envB["CODEWATCH_LISTEN"], envB["CODEWATCH_OPS_LISTEN"] = freeAddr(t), freeAddr(t)
	envB["CODEWATCH_DATA_DIR"], envB["HOME"] = t.TempDir(), t.TempDir()
	a := newServer(t, "replica-a", envA)
	b := newServer(t, "replica-b", envB)

	singleDB := pgtest.NewURL(t)
	singleSecret := newWebhookSecret()
	singleRec := newWebhookRecorder(t, singleSecret)
	envS := newServeEnv(t, singleDB)
	sinkEnv(envS, singleRec, singleSecret)
	solo := newServer(t, "single", envS)

	a.start()
	b.start()
	solo.start()
	for _, s := range []*server{a, b, solo} {
		s.waitReady(30 * time.Second)
	}
	assertMigratedOnce(t, replDB)

	plan := newReplicaPlan(t, rand.New(rand.NewPCG(seed, 7)), time.Now())
	var bodies []string
	for _, e := range plan.Events {
		bodies = append(bodies, string(e.Body))
	}

	// The two runs go on at the same time (t.Run from two goroutines; not
	// t.Parallel, which would wait for a free -parallel slot and shift one
	// run against the plan's clock).
	var replicated, alone flowResult
	var runs sync.WaitGroup
	runs.Go(func() {
		t.Run("two replicas", func(t *testing.T) {
			replicated = runPlan(t, []*server{a, b}, replRec, plan, rand.New(rand.NewPCG(seed, 11)))
			if p := replRec.problems(); len(p) > 0 {
				t.Errorf("alert sink refused requests: %v", p)
			}
			checkDatabase(t, replDB, envA["CODEWATCH_DATA_KEYS"], plan, replicated)
		})
	})
	runs.Go(func() {
		t.Run("one replica", func(t *testing.T) {
			alone = runPlan(t, []*server{solo}, singleRec, plan, rand.New(rand.NewPCG(seed, 13)))
			if p := singleRec.problems(); len(p) > 0 {
				t.Errorf("alert sink refused requests: %v", p)
			}
			checkDatabase(t, singleDB, envS["CODEWATCH_DATA_KEYS"], plan, alone)
		})
	})
	runs.Wait()
	for _, s := range []*server{a, b, solo} {
		if code, _ := s.stop(15 * time.Second); code != 0 {
			t.Errorf("%s: exit code %d", s.name, code)
		}
		checkLogs(t, s, bodies, replSecret, singleSecret)
	}
	overdueBy := func(s *server) (n int) {
		for _, r := range s.logsWithMsg("sweep") {
			n += int(r["overdue"].(float64))
		}
		return n
	}
	t.Logf("two replicas: %d events (%d messages to both at once, %d retries at the other replica, %d same event under a new message id), "+
		"%d alerts; overdue flagged by the sweeper of replica a %d, b %d (the rest on arrival); %s",
		len(plan.Events), replicated.doubles, replicated.resends, replicated.alts, len(replicated.alerts),
		overdueBy(a), overdueBy(b), replicated.elapsed.Round(time.Millisecond))
	single := alone
	if t.Failed() {
		return
	}

	// Every code's state is the fold of its events, and the same in both
	// runs; its alerts are the expected ones, each once.
	now := time.Now()
	for _, cp := range plan.Codes {
		want := foldSummary(cp.fold(), now)
		r, ok1 := replicated.codes[cp.ID]
		s, ok2 := single.codes[cp.ID]
		if !ok1 || !ok2 {
			t.Errorf("%s (%s): missing (replicas %v, single %v)", cp.ID, cp.Category, ok1, ok2)
			continue
		}
		if r.DeletionState != cp.WantState {
			t.Errorf("%s (%s): state %s, want %s", cp.ID, cp.Category, r.DeletionState, cp.WantState)
		}
		if got := codeSummary(r); got != want {
			t.Errorf("%s (%s): two replicas:\n  got  %s\n  fold %s", cp.ID, cp.Category, got, want)
		}
		if got := codeSummary(s); got != want {
			t.Errorf("%s (%s): one replica:\n  got  %s\n  fold %s", cp.ID, cp.Category, got, want)
		}
	}
	if len(replicated.codes) != len(plan.Codes) || len(single.codes) != len(plan.Codes) {
		t.Errorf("codes tracked: replicas %d, single %d, sent %d", len(replicated.codes), len(single.codes), len(plan.Codes))
	}
	for name, res := range map[string]flowResult{"two replicas": replicated, "one replica": single} {
		byCode := map[string][]sinkAlert{}
		seen := map[string]int{}
		for _, a := range res.alerts {
			seen[a.AlertID]++
			byCode[a.Code] = append(byCode[a.Code], a)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s: alert %s delivered %d times", name, id, n)
			}
		}
		for code := range byCode {
			if plan.byCode[code] == nil {
				t.Errorf("%s: alert for a code never sent: %s", name, code)
			}
		}
		for _, cp := range plan.Codes {
			if got := alertTypes(byCode[cp.ID]); !sameStrings(got, cp.WantAlerts) {
				t.Errorf("%s: %s (%s): alerts %v, want %v", name, cp.ID, cp.Category, got, cp.WantAlerts)
			}
		}
	}
}

// checkDatabase: each event stored once, alerts in the outbox match what was
// delivered, every delivery recorded as sent.
func checkDatabase(t *testing.T, dbURL, dataKeys string, plan *replicaPlan, res flowResult) {
	t.Helper()
	keys, err := datakeys.Parse(dataKeys)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn := dbConn(t, dbURL)
	var rows, msgs, evIDs int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT message_id), count(DISTINCT event_id) FROM events`).Scan(&rows, &msgs, &evIDs); err != nil {
		t.Fatal(err)
	}
	if rows != len(plan.Events) || msgs != rows || evIDs != rows {
		t.Errorf("events: %d rows, %d message ids, %d event ids; want %d of each", rows, msgs, evIDs, len(plan.Events))
	}
	sent := map[string]string{} // event_id -> message_id
	for _, e := range plan.Events {
		sent[e.EventID] = e.MsgID
	}
	rs, err := conn.Query(ctx, `SELECT event_id, message_id, key_id, raw FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{}
	for _, e := range plan.Events {
		bodies[e.EventID] = e.Body
	}
	for rs.Next() {
		var eid, mid string
		var keyID *string
		var raw []byte
		if err := rs.Scan(&eid, &mid, &keyID, &raw); err != nil {
			t.Fatal(err)
		}
		if want, ok := sent[eid]; !ok || want != mid {
			t.Errorf("event %s stored under message %s, sent as %s", eid, mid, want)
		}
		body, err := postgres.OpenBody(keys, "events", mid, keyID, raw)
		if err != nil || keyID == nil {
			t.Errorf("event %s: stored body does not open (key_id %v): %v", eid, keyID, err)
		}
		if string(body) != string(bodies[eid]) {
			t.Errorf("event %s: stored body differs from the one sent", eid)
		}
	}
	rs.Close()
	var quarantined int
	_ = conn.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&quarantined)
	if quarantined != 0 {
		t.Errorf("%d deliveries quarantined", quarantined)
	}

	var alerts, pending int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM alerts`).Scan(&alerts); err != nil {
		t.Fatal(err)
	}
	if alerts != len(res.alerts) {
		t.Errorf("outbox holds %d alerts, the sink received %d", alerts, len(res.alerts))
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM alert_deliveries WHERE status <> 'sent'`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Errorf("%d alert deliveries not sent", pending)
	}
	srs, err := conn.Query(ctx, `SELECT sink, count(*), max(attempts) FROM alert_deliveries GROUP BY 1 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var sinks []string
	for srs.Next() {
		var sink string
		var n, maxAttempts int
		if err := srs.Scan(&sink, &n, &maxAttempts); err != nil {
			t.Fatal(err)
		}
		sinks = append(sinks, sink)
		if n != alerts {
			t.Errorf("sink %s has %d deliveries for %d alerts", sink, n, alerts)
		}
		if maxAttempts != 1 {
			t.Errorf("sink %s: a delivery took %d attempts (the sink never fails here)", sink, maxAttempts)
		}
	}
	srs.Close()
	sort.Strings(sinks)
	if alerts > 0 && strings.Join(sinks, ",") != "log,webhook" {
		t.Errorf("sinks %v, want log and webhook", sinks)
	}
}
