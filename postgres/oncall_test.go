package postgres_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// Issue 23: routing by severity and workspace, and resolutions that follow
// their trouble.

var onCallSinks = []string{"log", "slack", "pagerduty"}

// newOnCallEnv is a swEnv whose Store routes and waits as cfg says.
func newOnCallEnv(t *testing.T, cfg postgres.Config) *swEnv {
	t.Helper()
	e := &swEnv{t: t, ctx: t.Context(), pool: pgtest.New(t), clock: newSwClock(), sinks: onCallSinks}
	e.store = e.onCallStore(e.pool, cfg)
	return e
}

// onCallStore starts a Store on pool with cfg, the env's clock and, unless
// cfg says, its sinks: another replica, or this one after a restart.
func (e *swEnv) onCallStore(pool *pgxpool.Pool, cfg postgres.Config) *postgres.Store {
	if cfg.Sinks == nil {
		cfg.Sinks = e.sinks
	}
	if cfg.RemovalTimeout == 0 {
		cfg.RemovalTimeout = 30 * time.Minute
	}
	cfg.Now = e.clock.Now
	return storetest.New(e.t, pool, cfg)
}

// sendIn ingests an event of code in workspace ws.
func (e *swEnv) sendIn(ws, typ, code string, at time.Time) {
	e.t.Helper()
	body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, DeviceID: swDevice, WorkspaceID: ws, OccurredAt: at})
	if err != nil {
		e.t.Fatal(err)
	}
	if res, err := e.store.Ingest(e.ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body}); err != nil || res.Outcome != lifecycle.Stored {
		e.t.Fatalf("ingest %s: %v %v", typ, res, err)
	}
}

// failIn makes code a failed removal in ws (a warning).
func (e *swEnv) failIn(ws, code string) {
	now := e.clock.Now()
	e.sendIn(ws, lifecycle.TypeSetOnDevice, code, now.Add(-time.Hour))
	e.sendIn(ws, lifecycle.TypeDeleted, code, now.Add(-2*time.Minute))
	e.sendIn(ws, lifecycle.TypeFailedToRemove, code, now.Add(-time.Minute))
}

// sinksOf lists each alert's type and sinks, oldest first.
func (e *swEnv) sinksOf(code string) []string {
	var out []string
	for _, a := range e.alerts(code) {
		out = append(out, fmt.Sprintf("%s%v", a.Type, a.Deliveries))
	}
	return out
}

func (e *swEnv) wantSinks(code string, want ...string) {
	e.t.Helper()
	if got := e.sinksOf(code); !slices.Equal(got, want) {
		e.t.Errorf("code %s: alerts %v, want %v", code, got, want)
	}
}

const (
	wsA = "0a0a0a0a-0000-4000-8000-00000000000a"
	wsB = "0b0b0b0b-0000-4000-8000-00000000000b"
)

// A sink takes the severities and workspaces its route allows; the log
// and unrouted sinks take everything; a critical pages.
func TestRoutingBySeverityAndWorkspace(t *testing.T) {
	e := newOnCallEnv(t, postgres.Config{Routes: map[string]postgres.Route{
		"pagerduty": {MinSeverity: lifecycle.SeverityCritical},
		"slack":     {MinSeverity: lifecycle.SeverityWarning, Workspaces: []string{wsA}},
	}})
	inA, inB := seamevent.NewID(), seamevent.NewID()
	e.failIn(wsA, inA)
	e.failIn(wsB, inB)
	e.wantSinks(inA, lifecycle.AlertTrouble+"[log slack]")
	e.wantSinks(inB, lifecycle.AlertTrouble+"[log]")

	// The lock opened with the deleted code: critical, paged, and the
	// failure's sinks hear of it too (the new trouble replaces theirs).
	e.sendIn(wsA, lifecycle.TypeLockUnlocked, inA, e.clock.Now())
	e.wantSinks(inA, lifecycle.AlertTrouble+"[log slack]", lifecycle.AlertTrouble+"[log pagerduty slack]")
	crit := e.alerts(inA)[1].Payload
	if crit.Severity != lifecycle.SeverityCritical || crit.PreviousTroubleID != e.alerts(inA)[0].Payload.TroubleID {
		t.Errorf("critical alert: severity %s, previous_trouble_id %q, want the failure's %q",
			crit.Severity, crit.PreviousTroubleID, e.alerts(inA)[0].Payload.TroubleID)
	}
	// Its acknowledgement resolves it everywhere it went.
	if _, _, err := e.store.Acknowledge(e.ctx, inA, "ops", "", ""); err != nil {
		t.Fatal(err)
	}
	res := e.alerts(inA)[2]
	if fmt.Sprint(res.Deliveries) != "[log pagerduty slack]" || res.Payload.TroubleID != crit.TroubleID {
		t.Errorf("resolution to %v naming %q, want [log pagerduty slack] naming %q", res.Deliveries, res.Payload.TroubleID, crit.TroubleID)
	}
}

// A resolution goes to exactly the sinks its trouble went to, whatever the
// configuration says when it comes, and after a restart: the row records
// them. A reminder goes where the trouble went and where the routes say
// now, and so does the resolution after it.
func TestResolutionGoesWhereTheTroubleWent(t *testing.T) {
	e := newOnCallEnv(t, postgres.Config{Sinks: []string{"log", "pagerduty"},
		Routes: map[string]postgres.Route{"pagerduty": {MinSeverity: lifecycle.SeverityWarning}}})
	removed, acked := seamevent.NewID(), seamevent.NewID()
	e.failIn(wsA, removed)
	e.failIn(wsA, acked)
	e.wantSinks(removed, lifecycle.AlertTrouble+"[log pagerduty]")

	// Restart with Slack added and PagerDuty for critical only.
	e.store.Close()
	e.store = e.onCallStore(e.pool, postgres.Config{Routes: map[string]postgres.Route{
		"pagerduty": {MinSeverity: lifecycle.SeverityCritical}, "slack": {MinSeverity: lifecycle.SeverityWarning}}})
	e.sendIn(wsA, lifecycle.TypeRemovedFromDevice, removed, e.clock.Now())
	e.wantSinks(removed, lifecycle.AlertTrouble+"[log pagerduty]", lifecycle.AlertResolved+"[log pagerduty]")
	if a := e.alerts(removed); a[1].Payload.TroubleID != a[0].Payload.TroubleID {
		t.Errorf("resolution names %q, want the trouble %q", a[1].Payload.TroubleID, a[0].Payload.TroubleID)
	}

	// A reminder under the new routes: Slack too (its route), PagerDuty
	// still (it holds the trouble); then the resolution goes to both.
	e.clock.Advance(5 * time.Hour)
	if res := e.sweep(4 * time.Hour); res.Reminders != 1 {
		t.Fatalf("sweep: %+v, want one reminder", res)
	}
	if _, _, err := e.store.Acknowledge(e.ctx, acked, "ops", "", ""); err != nil {
		t.Fatal(err)
	}
	e.wantSinks(acked, lifecycle.AlertTrouble+"[log pagerduty]", lifecycle.AlertReminder+"[log pagerduty slack]",
		lifecycle.AlertResolved+"[log pagerduty slack]")
}

// A trouble alerted by the previous version (no alerted_key, no
// alert_sinks: it went to every sink) resolves at every sink.
func TestResolutionOfATroubleAlertedBeforeRouting(t *testing.T) {
	e := newOnCallEnv(t, postgres.Config{Routes: map[string]postgres.Route{"pagerduty": {MinSeverity: lifecycle.SeverityCritical}}})
	code := seamevent.NewID()
	e.failIn(wsA, code)
	if _, err := e.pool.Exec(e.ctx, `UPDATE access_codes SET alerted_key = NULL, alert_sinks = NULL WHERE access_code_id = $1`, code); err != nil {
		t.Fatal(err)
	}
	e.sendIn(wsA, lifecycle.TypeRemovedFromDevice, code, e.clock.Now())
	e.wantSinks(code, lifecycle.AlertTrouble+"[log slack]", lifecycle.AlertResolved+"[log pagerduty slack]")
}
