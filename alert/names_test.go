package alert_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codewatch/codewatch/alert"
	"github.com/codewatch/codewatch/lifecycle"
)

// fixedNames names every code and lock the same, and counts the asks.
type fixedNames struct {
	n    lifecycle.Names
	asks atomic.Int32
	wait atomic.Int64
}

func (f *fixedNames) ForAlert(_ context.Context, _, _, _ string, wait time.Duration) (lifecycle.Names, error) {
	f.asks.Add(1)
	f.wait.Store(int64(wait))
	return f.n, nil
}

// Alerts name the code and its lock (issue 22), as the names stand when the
// alert is delivered: the webhook payload's fields, its message and Slack's
// text.
func TestAlertsNameTheCodeAndLock(t *testing.T) {
	o := newOutbox(t, "webhook", "slack")
	secret := newSecret(t)
	rcv := newReceiver(t, secret)
	slack := newSlackReceiver(t)
	code, door, street := "Guest: Smith, 5–8 Dec", "Front *door*", "12 Elm St"
	names := &fixedNames{n: lifecycle.Names{AccessCodeName: &code, DeviceName: &door, LocationName: &street}}
	o.work(o.pool, alert.WorkerConfig{Names: names}, rcv.sink(secret), slack.sink())

	id, _ := o.fail()
	o.waitSettled(2)
	if names.asks.Load() == 0 || time.Duration(names.wait.Load()) != 10*time.Second {
		t.Fatalf("names asked %d times, wait %v; want asks, waiting at most 10 s", names.asks.Load(), time.Duration(names.wait.Load()))
	}
	ps := rcv.payloads()
	if len(ps) != 1 {
		t.Fatalf("webhook got %d payloads", len(ps))
	}
	p := ps[0]
	if p["access_code_name"] != code || p["device_name"] != door || p["location_name"] != street {
		t.Fatalf("payload names: %v / %v / %v", p["access_code_name"], p["device_name"], p["location_name"])
	}
	msg, _ := p["message"].(string)
	if !strings.Contains(msg, code) || !strings.Contains(msg, id) || !strings.Contains(msg, "Front *door* at 12 Elm St") {
		t.Fatalf("message does not name the code and lock: %s", msg)
	}
	texts := slack.got()
	if len(texts) != 1 {
		t.Fatalf("slack got %d", len(texts))
	}
	if !strings.Contains(texts[0], "*Guest: Smith, 5–8 Dec*") || !strings.Contains(texts[0], "*Front door* at *12 Elm St*") ||
		!strings.Contains(texts[0], id) {
		t.Fatalf("slack text does not name the code and lock:\n%s", texts[0])
	}
}
