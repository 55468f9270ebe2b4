package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// The real binary with DATABASE_URL through PgBouncer in transaction pooling
// mode (five server connections shared by everything) and migrations direct
// (CODEWATCH_MIGRATE_DATABASE_URL): ingest, the ops API, the sweeper, alert
// delivery and replay all work. Before, plan_cache_mode was sent as a
// startup parameter, which PgBouncer refuses, and named prepared statements
// broke once server connections were shared.
func TestServeThroughPgBouncer(t *testing.T) {
	t.Parallel()
	direct, bounced := pgtest.NewBouncedURL(t)
	alertSecret := newWebhookSecret()
	hooks := newWebhookRecorder(t, alertSecret)
	env := newServeEnv(t, bounced)
	env["CODEWATCH_MIGRATE_DATABASE_URL"] = direct
	env["CODEWATCH_REMOVAL_TIMEOUT"] = "2s"
	env["CODEWATCH_SWEEP_INTERVAL"] = "200ms"
	env["CODEWATCH_ALERT_WEBHOOK_URL"] = hooks.URL() + "/alerts"
	env["CODEWATCH_ALERT_WEBHOOK_SECRET"] = alertSecret
	s := startServer(t, "serve", env)
	sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret}

	// Twenty codes at once: removed, failed, and deleted but never confirmed.
	type story struct {
		code  string
		types []string
		want  lifecycle.DeletionState
	}
	var stories []story
	for i := range 20 {
		st := story{code: seamevent.NewID()}
		switch i % 3 {
		case 0:
			st.types, st.want = []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeRemovedFromDevice}, lifecycle.Removed
		case 1:
			st.types, st.want = []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted, lifecycle.TypeFailedToRemove}, lifecycle.Failed
		default:
			st.types, st.want = []string{lifecycle.TypeSetOnDevice, lifecycle.TypeDeleted}, lifecycle.AwaitingRemoval
		}
		stories = append(stories, st)
	}
	var wg sync.WaitGroup
	for _, st := range stories {
		wg.Go(func() {
			base := time.Now()
			for j, typ := range st.types {
				body, _ := seamevent.Build(typ, seamevent.Options{AccessCodeID: st.code, OccurredAt: base.Add(time.Duration(j) * time.Second)})
				rep, err := sender.Send(context.Background(), seamevent.NewMessageID(), body)
				if err != nil || rep.Status != http.StatusOK {
					t.Errorf("send %s: %v %d %s", typ, err, rep.Status, rep.Body)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, st := range stories {
		if got := s.code(st.code); got.DeletionState != st.want || len(got.Events) != len(st.types) {
			t.Errorf("%s: %s with %d events, want %s with %d", st.code, got.DeletionState, len(got.Events), st.want, len(st.types))
		}
	}
	var list struct {
		AccessCodes []lifecycle.AccessCode `json:"access_codes"`
	}
	if code := s.api(http.MethodGet, "/v1/access_codes?deletion_state=failed", s.Token, nil, &list); code != http.StatusOK || len(list.AccessCodes) != 7 {
		t.Errorf("list failed codes: %d, %d codes", code, len(list.AccessCodes))
	}
	if code := s.api(http.MethodGet, "/v1/summary", s.Token, nil, nil); code != http.StatusOK {
		t.Errorf("summary: %d", code)
	}
	// The sweeper flags the six unconfirmed deletions; with the seven
	// failures, thirteen alerts reach the webhook, each once.
	deadline := time.Now().Add(30 * time.Second)
	for len(hooks.alerts("")) < 13 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, a := range hooks.alerts("") {
		seen[a.AlertID]++
		if a.Type != lifecycle.AlertTrouble {
			t.Errorf("unexpected alert %s for %s", a.Type, a.Code)
		}
	}
	if len(seen) != 13 || len(hooks.alerts("")) != 13 {
		t.Errorf("%d alerts (%d distinct), want 13 once each; problems %v", len(hooks.alerts("")), len(seen), hooks.problems())
	}
	// Acknowledge through the API; the resolution is delivered.
	if code := s.api(http.MethodPost, "/v1/access_codes/"+stories[1].code+"/acknowledge", s.Token, map[string]string{"note": "checked"}, nil); code != http.StatusOK {
		t.Fatalf("acknowledge: %d", code)
	}
	for len(hooks.alerts(stories[1].code)) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if as := hooks.alerts(stories[1].code); len(as) != 2 || as[1].Type != lifecycle.AlertResolved {
		t.Errorf("after acknowledging: %v", alertTypes(as))
	}
	if code, _ := s.stop(15 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}

	// Replay through PgBouncer too.
	res := runCLI(t, []string{"DATABASE_URL=" + bounced, "CODEWATCH_REMOVAL_TIMEOUT=2s"}, "replay", "--batch", "7")
	if res.Code != 0 || !strings.Contains(res.Stdout, "replay done: 20 codes, 0 changed") {
		t.Fatalf("replay through PgBouncer: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
