package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fuzz targets for Parse and Fold (make fuzz runs them), and the model of the
// rules that FuzzFold checks Fold against.

// FuzzParse: Parse never panics; what it accepts is storable, and what it
// refuses is refused as *Unusable with a stable kind.
func FuzzParse(f *testing.F) {
	for _, body := range parseSeamExamples {
		f.Add([]byte(body))
	}
	for _, sc := range foldScenarios() {
		for _, e := range sc.events {
			f.Add(parseEventBody(e))
		}
	}
	for _, s := range []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"event_id":"e"}`, `{"event_id":1,"event_type":"t"}`,
		`{"event_id":"e","event_type":"t","occurred_at":"0001-01-01T00:00:00Z","created_at":"9999-12-31T23:59:59Z"}`,
		`{"event_id":"e","event_type":"t","occurred_at":"2026-06-01"}`,
		`{"event_id":"a\u0000","event_type":"t"}`,
		`{"event_id":"e","event_type":"t","device_errors":[{"message":"\u0000"}],"device_warnings":[]}`,
		`{"event_id":"e","event_type":"t","access_code_errors":"not an array","device_errors":{}}`,
		"{\"event_id\":\"\xff\",\"event_type\":\"t\"}",
		`{"event_id":"e","event_type":"t","occurred_at":"` + strings.Repeat(`\u0001`, 100) + `"}`,
		`{"event_id":"e","event_type":"t","created_at":"` + strings.Repeat(`\u2028`, 100) + `"}`,
		"{\"event_id\":\"e\",\"event_type\":\"t\",\"occurred_at\":\"" + strings.Repeat("\xe2\x82", 40) + "\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Parse(raw)
		if err != nil {
			var u *Unusable
			if !errors.As(err, &u) {
				t.Fatalf("error %T %v is not *Unusable", err, err)
			}
			if u.Kind() == "" || strings.ContainsAny(u.Kind(), ": ") {
				t.Fatalf("kind %q of %q", u.Kind(), u.Reason)
			}
			if !utf8.ValidString(u.Reason) || strings.ContainsRune(u.Reason, 0) || len(u.Reason) > 400 {
				t.Fatalf("reason %q is not storable", u.Reason)
			}
			return
		}
		if p.EventID == "" || p.EventType == "" {
			t.Fatalf("accepted without event_id/event_type: %+v", p)
		}
		for name, id := range map[string]string{"event_id": p.EventID, "event_type": p.EventType,
			"workspace_id": p.WorkspaceID, "access_code_id": p.AccessCodeID, "device_id": p.DeviceID,
			"connected_account_id": p.ConnectedAccountID} {
			if !utf8.ValidString(id) || strings.ContainsRune(id, 0) || len(id) > MaxIDLength {
				t.Fatalf("%s %q is not a storable id", name, id)
			}
		}
		for _, tm := range []*time.Time{p.OccurredAt, p.CreatedAt} {
			if tm != nil && tm.Location() != time.UTC {
				t.Fatalf("time %v not in UTC", tm)
			}
		}
		if p.Details != nil {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(p.Details, &m); err != nil || len(m) == 0 {
				t.Fatalf("details %q: %v", p.Details, err)
			}
			for k, v := range m {
				if !parseIsDetailKey(k) || len(v) == 0 || v[0] != '[' {
					t.Fatalf("details[%q] = %s", k, v)
				}
			}
			if bytes.Contains(p.Details, []byte(`\u0000`)) {
				t.Fatalf("details keep a NUL escape: %s", p.Details)
			}
		}
		// Deterministic.
		q, err := Parse(raw)
		if err != nil || fmt.Sprint(q) != fmt.Sprint(p) {
			t.Fatalf("second Parse differs: %+v %v", q, err)
		}
	})
}

func parseIsDetailKey(k string) bool {
	for _, d := range detailKeys {
		if d == k {
			return true
		}
	}
	return false
}

// parseEventBody renders e as a Seam body, for FuzzParse's seeds.
func parseEventBody(e Event) []byte {
	m := map[string]any{"event_id": e.EventID, "event_type": e.Type,
		"occurred_at":  e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"),
		"created_at":   e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"),
		"workspace_id": e.WorkspaceID, "access_code_id": e.AccessCodeID, "device_id": e.DeviceID,
		"connected_account_id": e.ConnectedAccountID}
	if e.Details != nil {
		var d map[string]json.RawMessage
		if json.Unmarshal(e.Details, &d) == nil {
			for k, v := range d {
				m[k] = v
			}
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// foldFuzzTypes are the event types FuzzFold draws from: the seven folded
// ones and one that is kept in the history only.
var foldFuzzTypes = []string{TypeCreated, TypeSetOnDevice, TypeDeleted, TypeRemovedFromDevice,
	TypeDelayInRemoving, TypeFailedToRemove, TypeDeletedExternally, foldTypeChanged}

// foldFuzzMaxEvents bounds the events one fuzz input decodes to.
const foldFuzzMaxEvents = 12

// foldDecode turns fuzz bytes into events, three bytes an event: the type,
// the event id (one of 8, so ids repeat), and the time (one of 8 minutes, so
// times tie) with two bits each choosing the device and workspace ids (one
// choice leaves them empty). An event's details follow from its id, type and
// time, so a repeated triple is an exact duplicate.
func foldDecode(data []byte) []Event {
	var out []Event
	for i := 0; i+2 < len(data) && len(out) < foldFuzzMaxEvents; i += 3 {
		typ := foldFuzzTypes[int(data[i])%len(foldFuzzTypes)]
		id := fmt.Sprintf("ev-%d", data[i+1]%8)
		b := data[i+2]
		e := Event{EventID: id, Type: typ, OccurredAt: foldAt(int(b % 8)), AccessCodeID: foldCodeID,
			ConnectedAccountID: foldAccount}
		if v := (b >> 3) & 3; v != 0 {
			e.DeviceID = fmt.Sprintf("device-%d", v)
		}
		if v := (b >> 5) & 3; v != 0 {
			e.WorkspaceID = fmt.Sprintf("workspace-%d", v)
		}
		if typ == TypeDelayInRemoving || typ == TypeFailedToRemove {
			e.Details = json.RawMessage(fmt.Sprintf(`{"device_errors":[{"message":"%s %s %d"}]}`, id, typ, b))
		}
		out = append(out, e)
	}
	return out
}

// foldEncode is foldDecode's inverse for seeding: ids and times are replaced
// by their ranks, which keeps the order Fold reads them in.
func foldEncode(events []Event) []byte {
	rank := func(less func(i, j int) bool, n int) []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return less(idx[a], idx[b]) })
		r := make([]int, n)
		k := 0
		for j, i := range idx {
			if j > 0 && less(idx[j-1], i) {
				k++
			}
			r[i] = k
		}
		return r
	}
	ids := rank(func(i, j int) bool { return events[i].EventID < events[j].EventID }, len(events))
	times := rank(func(i, j int) bool { return events[i].OccurredAt.Before(events[j].OccurredAt) }, len(events))
	var out []byte
	for i, e := range events {
		t := len(foldFuzzTypes) - 1
		for k, typ := range foldFuzzTypes {
			if typ == e.Type {
				t = k
			}
		}
		out = append(out, byte(t), byte(ids[i]%8), byte(times[i]%8))
	}
	return out
}

// foldModel states the rules as conditions on the events sorted by
// occurred_at then event_id, independently of Fold's loop. It expects
// distinct event ids.
func foldModel(events []Event) (state DeletionState, onDevice string, troubleID string) {
	evs := append([]Event(nil), events...)
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].OccurredAt.Equal(evs[j].OccurredAt) {
			return evs[i].OccurredAt.Before(evs[j].OccurredAt)
		}
		return evs[i].EventID < evs[j].EventID
	})
	lastSet := -1
	deleted, created := false, false
	for i, e := range evs {
		switch e.Type {
		case TypeSetOnDevice:
			lastSet = i
		case TypeDeleted, TypeDeletedExternally:
			deleted = true
		case TypeCreated:
			created = true
		}
	}
	// After the last programming: was the removal confirmed, and what was
	// the last removal problem reported?
	confirmed := false
	trouble := -1
	for i := lastSet + 1; i < len(evs); i++ {
		switch evs[i].Type {
		case TypeRemovedFromDevice, TypeDeletedExternally:
			confirmed = true
		case TypeDelayInRemoving, TypeFailedToRemove:
			trouble = i
		}
	}
	// The latest set or removal says where the code is; else a creation says
	// it is not on the lock yet; else nobody knows.
	onDevice = "nil"
	if created {
		onDevice = "false"
	}
	for _, e := range evs {
		switch e.Type {
		case TypeSetOnDevice:
			onDevice = "true"
		case TypeRemovedFromDevice, TypeDeletedExternally:
			onDevice = "false"
		}
	}
	switch {
	case !deleted:
		return Active, onDevice, ""
	case confirmed:
		return Removed, "false", ""
	case trouble >= 0 && evs[trouble].Type == TypeFailedToRemove:
		return Failed, onDevice, evs[trouble].EventID
	case trouble >= 0:
		return Delayed, onDevice, evs[trouble].EventID
	case created && lastSet < 0:
		return DeletedNotProgrammed, "false", ""
	}
	return AwaitingRemoval, onDevice, ""
}

// foldDistinctIDs reports whether every event id in events names one body
// (exact duplicates allowed), and returns the events without duplicates.
func foldDistinctIDs(events []Event) ([]Event, bool) {
	seen := map[string]Event{}
	var out []Event
	for _, e := range events {
		if prev, ok := seen[e.EventID]; ok {
			if fmt.Sprint(prev) != fmt.Sprint(e) {
				return nil, false
			}
			continue
		}
		seen[e.EventID] = e
		out = append(out, e)
	}
	return out, true
}

// foldCheckSet is what FuzzFold checks of one set of events.
func foldCheckSet(t *testing.T, seed uint64, events []Event) {
	t.Helper()
	got := Fold(events)
	if bad := foldInvariants(got, events); len(bad) > 0 {
		t.Fatalf("invariants: %v\nevents %v", bad, events)
	}
	if uniq, ok := foldDistinctIDs(events); ok {
		state, on, tid := foldModel(uniq)
		gotTID := ""
		if got.Trouble != nil {
			gotTID = got.Trouble.EventID
		}
		if got.DeletionState != state || foldFmtBool(got.OnDevice) != on || gotTID != tid {
			t.Fatalf("Fold gives %s on_device %s trouble %q; the rules give %s %s %q\nevents %v",
				got.DeletionState, foldFmtBool(got.OnDevice), gotTID, state, on, tid, events)
		}
	}
	// Reversed.
	rev := make([]Event, len(events))
	for i, e := range events {
		rev[len(events)-1-i] = e
	}
	if d := foldStateDiff(Fold(rev), got); d != "" {
		t.Fatalf("reversed: %s\nevents %v", d, events)
	}
	// Shuffled.
	shuf := append([]Event(nil), events...)
	rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Shuffle(len(shuf), func(i, j int) {
		shuf[i], shuf[j] = shuf[j], shuf[i]
	})
	if d := foldStateDiff(Fold(shuf), got); d != "" {
		t.Fatalf("shuffled (seed %d): %s\nevents %v", seed, d, events)
	}
	// One event delivered twice, at the front and at the back.
	if len(events) > 0 {
		dup := events[int(seed%uint64(len(events)))]
		for _, with := range [][]Event{append([]Event{dup}, events...), append(append([]Event(nil), events...), dup)} {
			if d := foldStateDiff(Fold(with), got); d != "" {
				t.Fatalf("%s duplicated: %s\nevents %v", dup.EventID, d, events)
			}
		}
	}
	// Only an unconfirmed deletion is ever flagged.
	if got.LastEventAt != nil {
		flag := Assess(got.Summary(), got.LastEventAt.Add(time.Hour), 30*time.Minute)
		if (flag != nil) != got.DeletionState.Unconfirmed() {
			t.Fatalf("%s flagged %+v", got.DeletionState, flag)
		}
	}
}

// FuzzFold: for any small set of events, Fold gives one State whatever the
// order and however often an event is delivered, and it agrees with the
// rules as foldModel states them.
func FuzzFold(f *testing.F) {
	for i, sc := range foldScenarios() {
		f.Add(uint64(i), foldEncode(sc.events))
	}
	var examples []Event
	for name, body := range parseSeamExamples {
		p, err := Parse([]byte(body))
		if err != nil || !strings.HasPrefix(name, "access_code.") {
			continue
		}
		examples = append(examples, Event{EventID: p.EventID, Type: p.EventType, OccurredAt: *p.OccurredAt})
	}
	sort.Slice(examples, func(i, j int) bool { return examples[i].EventID < examples[j].EventID })
	f.Add(uint64(99), foldEncode(examples))
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		foldCheckSet(t, seed, foldDecode(data))
	})
}

// The model and the decoder are test code too: check them on the scenarios,
// whose expected states are written out by hand.
func TestFoldModelScenarios(t *testing.T) {
	for _, sc := range foldScenarios() {
		uniq, ok := foldDistinctIDs(sc.events)
		if !ok {
			t.Fatalf("%s: conflicting ids", sc.name)
		}
		state, on, tid := foldModel(uniq)
		if state != sc.want.state || on != sc.want.onDevice || tid != sc.want.troubleEventID {
			t.Errorf("%s: model %s %s %q, want %s %s %q", sc.name, state, on, tid,
				sc.want.state, sc.want.onDevice, sc.want.troubleEventID)
		}
		// Encoded and decoded, a scenario keeps its state.
		dec := foldDecode(foldEncode(sc.events))
		if got := Fold(dec).DeletionState; got != sc.want.state {
			t.Errorf("%s: decoded scenario folds to %s, want %s", sc.name, got, sc.want.state)
		}
	}
}
