package seamsync_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
)

// Defect (issue 19, point 14): the start-up backfill began 15 minutes before
// the newest stored event of any source, and codewatch's own events (a
// poll, stamped with the poll's time) made a day-long webhook outage look
// covered. Now it begins before the newest event Seam sent as a webhook,
// within the bound, and an event dated in the future cannot move the window
// past now.
func TestStartupBackfillFollowsSeamsWebhooks(t *testing.T) {
	ctx := context.Background()
	// The database stamps received_at with its own clock: now is real.
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, "http://127.0.0.1:1", "k", postgres.Config{Now: func() time.Time { return now }})
	const code, device = "c_outage", "d_outage"
	e.webhook(seamEvent(t, lifecycle.TypeSetOnDevice, code, device, now.Add(-24*time.Hour)))
	// Since then, only codewatch's own: a poll now, and a Seam event it
	// backfilled (read from events/list, not sent as a webhook).
	if _, err := e.store.Record(ctx, []lifecycle.Delivery{lifecycle.OwnEvent("cw_poll_1", lifecycle.TypeAccessCodePolled, now,
		lifecycle.CodeRef{AccessCodeID: code, DeviceID: device}, lifecycle.PollDetails{Status: "set"})}, nil); err != nil {
		t.Fatal(err)
	}
	backfilled := seamEvent(t, "access_code.changed", code, device, now.Add(-time.Minute))
	if r, err := e.store.Ingest(ctx, lifecycle.Delivery{MessageID: "backfill:x", Body: backfilled, Source: lifecycle.SourcePoll}); err != nil || r.Outcome != lifecycle.Stored {
		t.Fatalf("backfilled: %+v %v", r, err)
	}
	job, err := e.svc.StartupBackfill(ctx, 7*24*time.Hour)
	if err != nil || job.From != now.Add(-24*time.Hour-15*time.Minute).Unix() || job.To != now.Unix()+1 {
		t.Fatalf("after a day of webhook outage: from %v to %v (%v), want from %v",
			time.Unix(job.From, 0).UTC(), time.Unix(job.To, 0).UTC(), err, now.Add(-24*time.Hour-15*time.Minute))
	}
	if job, err = e.svc.StartupBackfill(ctx, 12*time.Hour); err != nil || job.From != now.Add(-12*time.Hour).Unix() {
		t.Fatalf("bounded: from %v (%v), want %v", time.Unix(job.From, 0).UTC(), err, now.Add(-12*time.Hour))
	}

	// A webhook dated a year ahead (a skewed or hostile clock) counts as of
	// its receipt at the latest.
	e.webhook(seamEvent(t, "access_code.changed", "c_future", device, now.Add(365*24*time.Hour)))
	job, err = e.svc.StartupBackfill(ctx, 7*24*time.Hour)
	if err != nil || job.To != now.Unix()+1 || job.From != now.Add(-15*time.Minute).Unix() {
		t.Fatalf("after a future-dated webhook: from %v to %v (%v), want from %v to now",
			time.Unix(job.From, 0).UTC(), time.Unix(job.To, 0).UTC(), err, now.Add(-15*time.Minute))
	}
	// Received a day ago, it cannot hide the day since.
	if _, err := e.pool.Exec(ctx, `UPDATE events SET received_at = $1 WHERE access_code_id = 'c_future'`, now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if job, err = e.svc.StartupBackfill(ctx, 7*24*time.Hour); err != nil || job.From != now.Add(-24*time.Hour-15*time.Minute).Unix() {
		t.Fatalf("a future-dated webhook received a day ago: from %v (%v), want %v",
			time.Unix(job.From, 0).UTC(), err, now.Add(-24*time.Hour-15*time.Minute))
	}
}

// A future-dated newest event, whatever its receipt says, never starts the
// window later than the overlap before now (the store clamps to the receipt,
// the service to its own clock).
func TestStartupBackfillClampsTheFuture(t *testing.T) {
	ctx := context.Background()
	// The service's clock is behind the database's: the webhook, received
	// at the database's now, is ten minutes ahead of the service.
	now := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)
	e := newEnv(t, "http://127.0.0.1:1", "k", postgres.Config{Now: func() time.Time { return now }})
	e.webhook(seamEvent(t, "access_code.changed", "c1", "d1", now.Add(10*time.Minute)))
	job, err := e.svc.StartupBackfill(ctx, 7*24*time.Hour)
	if err != nil || job.To != now.Unix()+1 || job.From > now.Add(-15*time.Minute).Unix() {
		t.Fatalf("from %v to %v (%v), want from at most %v, to now",
			time.Unix(job.From, 0).UTC(), time.Unix(job.To, 0).UTC(), err, now.Add(-15*time.Minute))
	}
}

// Defect (issue 19, point 10's sibling): a backfilled event's message id
// holds its event_id, cut at 255 bytes (inside a character for a long id)
// or holding a NUL as Seam's JSON may spell it; Postgres refused the
// quarantine row and every backfill failed on that event. Now such events
// are quarantined and the backfill goes on.
func TestBackfillQuarantinesOddEventIDs(t *testing.T) {
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	ev := func(id string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"event_id": id, "event_type": lifecycle.TypeCreated,
			"access_code_id": "c_odd", "device_id": "d_odd", "occurred_at": at, "created_at": at})
		return b
	}
	events := []json.RawMessage{
		ev("ev_plain"),
		ev("ev_nul_\x00_x"),
		ev(strings.Repeat("x", 254) + strings.Repeat("é", 10)), // byte 255 is inside an é
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"events": events, "ok": true})
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, srv.URL, "k", postgres.Config{})
	res, err := e.svc.Backfill(context.Background(), time.Now().Add(-2*time.Hour), time.Now(), nil)
	if err != nil || res.Read != 3 || res.Stored != 1 || res.Quarantined != 2 {
		t.Fatalf("backfill: %+v %v, want 1 stored and 2 quarantined", res, err)
	}
}
