package main

import (
	"math/rand/v2"
	"sort"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// Lifecycle kinds: how an access code's deletion ends.
const (
	kindRemoved         = "removed"           // created, set, deleted, removed_from_device
	kindDelayed         = "delayed"           // ... deleted, delay_in_removing_from_device
	kindFailed          = "failed"            // ... deleted, failed_to_remove_from_device
	kindFailThenRemoved = "fail_then_removed" // ... deleted, failed_to_remove, removed_from_device
)

// Duplicate kinds of a delivery.
const (
	dupNone   = ""
	dupSameID = "same_svix_id" // the same message again, as a Svix redelivery
	dupNewID  = "new_svix_id"  // the same event under a new svix-id
)

// code is one access code's whole lifecycle, as the driver generated it.
type code struct {
	id       string
	kind     string
	shuffled bool
	events   []*event
}

// event is one Seam event; every delivery of it carries the same body.
type event struct {
	code       *code
	typ        string
	id         string
	occurredAt time.Time
	body       []byte
	deliveries []*delivery
}

// lifecycleEvent is the event as lifecycle.Fold sees it.
func (e *event) lifecycleEvent() lifecycle.Event {
	return lifecycle.Event{
		EventID:            e.id,
		Type:               e.typ,
		OccurredAt:         e.occurredAt,
		WorkspaceID:        workspaceID,
		AccessCodeID:       e.code.id,
		DeviceID:           deviceID,
		ConnectedAccountID: connectedAccountID,
	}
}

const (
	workspaceID        = "680d7c60-0a92-4e78-85bd-cb45155576b9"
	deviceID           = "b2c5d123-c7da-44be-ac72-4ad4ca56dbd8"
	connectedAccountID = "9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"
)

// delivery is one Svix message: a svix-id and a body, attempted until it is
// acknowledged or the retry budget is spent. Its fields after sched are
// written only by the goroutine delivering it, and read after it is done.
type delivery struct {
	ev    *event
	msgID string
	dup   string
	// sameSlot: scheduled at the same instant as the delivery before it.
	sameSlot bool
	sched    time.Time

	started   bool
	firstSend time.Time
	attempts  int
	acked     bool
	ackAt     time.Time
	// ackDuplicate: the acknowledging response said {"duplicate":true}.
	ackDuplicate   bool
	ackQuarantined bool
	gaveUp         bool
	lastErr        string
}

var kindTypes = map[string][]string{
	kindRemoved:         {lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice},
	kindDelayed:         {lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeDelayInRemoving},
	kindFailed:          {lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove},
	kindFailThenRemoved: {lifecycle.TypeCreated, lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove, lifecycle.TypeRemovedFromDevice},
}

// mix is the share of each kind among generated codes.
type mix struct {
	Shuffle float64 // share of lifecycles sent in a shuffled order
	DupSame float64 // per event: chance of a second message with the same svix-id
	DupNew  float64 // per event: chance of the same event under a new svix-id
	Window  int     // lifecycles interleaved at once
}

var defaultMix = mix{Shuffle: 0.3, DupSame: 0.06, DupNew: 0.06, Window: 8}

func pickKind(r *rand.Rand) string {
	switch x := r.Float64(); {
	case x < 0.4:
		return kindRemoved
	case x < 0.6:
		return kindDelayed
	case x < 0.8:
		return kindFailed
	default:
		return kindFailThenRemoved
	}
}

// newCode builds one lifecycle and the steps that send it: each step is a
// group of deliveries sent at one instant (a message and, sometimes, a
// duplicate racing it).
func newCode(r *rand.Rand, m mix, base time.Time) (*code, [][]*delivery) {
	c := &code{id: seamevent.NewID(), kind: pickKind(r)}
	types := kindTypes[c.kind]
	for i, typ := range types {
		// A second apart, the last a second before its lifecycle's first
		// send: Seam reports what already happened.
		at := base.Add(time.Duration(i-len(types)) * time.Second).Truncate(time.Millisecond)
		e := &event{code: c, typ: typ, id: seamevent.NewID(), occurredAt: at}
		body, err := seamevent.Build(typ, seamevent.Options{
			EventID: e.id, AccessCodeID: c.id, DeviceID: deviceID, WorkspaceID: workspaceID,
			ConnectedAccountID: connectedAccountID, OccurredAt: at,
		})
		if err != nil {
			panic(err) // static event types: cannot happen
		}
		e.body = body
		c.events = append(c.events, e)
	}
	order := append([]*event(nil), c.events...)
	if r.Float64() < m.Shuffle {
		c.shuffled = true
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	var steps [][]*delivery
	var later []*delivery
	for _, e := range order {
		d := &delivery{ev: e, msgID: seamevent.NewMessageID()}
		e.deliveries = append(e.deliveries, d)
		step := []*delivery{d}
		for _, k := range []string{dupSameID, dupNewID} {
			p := m.DupSame
			if k == dupNewID {
				p = m.DupNew
			}
			if r.Float64() >= p {
				continue
			}
			dd := &delivery{ev: e, msgID: d.msgID, dup: k}
			if k == dupNewID {
				dd.msgID = seamevent.NewMessageID()
			}
			e.deliveries = append(e.deliveries, dd)
			if r.IntN(2) == 0 {
				dd.sameSlot = true // races the original
				step = append(step, dd)
			} else {
				later = append(later, dd)
			}
		}
		steps = append(steps, step)
	}
	// Later duplicates go at random positions after their original's step
	// (so possibly at the end, after the rest of the lifecycle).
	for _, dd := range later {
		origin := 0
		for i, s := range steps {
			if s[0].ev == dd.ev {
				origin = i
			}
		}
		at := origin + 1 + r.IntN(len(steps)-origin)
		steps = append(steps[:at], append([][]*delivery{{dd}}, steps[at:]...)...)
	}
	return c, steps
}

// plan assigns deliveries to send times. slots are the instants at which a
// step starts (several equal instants send several steps at once); a
// lifecycle never has two steps at one instant. Lifecycles still open when
// the slots run out finish at tailRate after the last slot, so every
// generated lifecycle is sent whole.
func plan(r *rand.Rand, m mix, slots []time.Time, tailRate float64) ([]*code, []*delivery) {
	sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
	type open struct {
		c     *code
		steps [][]*delivery
		last  time.Time
	}
	var codes []*code
	var dels []*delivery
	var active []*open
	emit := func(o *open, at time.Time) {
		for _, d := range o.steps[0] {
			d.sched = at
			dels = append(dels, d)
		}
		o.steps = o.steps[1:]
		o.last = at
	}
	start := func(at time.Time) *open {
		c, steps := newCode(r, m, at)
		codes = append(codes, c)
		o := &open{c: c, steps: steps}
		active = append(active, o)
		return o
	}
	prune := func() {
		kept := active[:0]
		for _, o := range active {
			if len(o.steps) > 0 {
				kept = append(kept, o)
			}
		}
		active = kept
	}
	for _, at := range slots {
		var ready []*open
		for _, o := range active {
			if o.last.Before(at) || o.last.IsZero() {
				ready = append(ready, o)
			}
		}
		var o *open
		if len(active) < m.Window || len(ready) == 0 {
			o = start(at)
		} else {
			o = ready[r.IntN(len(ready))]
		}
		emit(o, at)
		prune()
	}
	at := time.Time{}
	if len(slots) > 0 {
		at = slots[len(slots)-1]
	}
	gap := time.Duration(float64(time.Second) / tailRate)
	for guard := 0; len(active) > 0 && guard < 1_000_000; guard++ {
		at = at.Add(gap)
		emit(active[r.IntN(len(active))], at)
		prune()
	}
	return codes, dels
}

// uniformSlots returns n = rate*d instants spread evenly over [from, from+d).
func uniformSlots(from time.Time, d time.Duration, rate float64) []time.Time {
	n := int(rate * d.Seconds())
	out := make([]time.Time, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, from.Add(time.Duration(float64(i)/rate*float64(time.Second))))
	}
	return out
}

// wave returns n slots at one instant: n steps sent at once.
func wave(at time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = at
	}
	return out
}
