package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/lifecycle"
)

// On-call (issue 23): which sinks an alert goes to (routing), decided when
// the alert is raised, under the code's row lock, and recorded on the row.
// What the row records (alerted_key, alert_sinks) is what the sinks were
// told, so a resolution goes exactly where its trouble went whatever the
// configuration says by then, on any replica, after any restart; and a
// trouble that replaces another names it (previous_trouble_id), so the
// sinks that keep incidents open close it first.

// Route is which alerts a sink takes (CODEWATCH_<SINK>_MIN_SEVERITY and
// CODEWATCH_<SINK>_WORKSPACES). A sink without a route takes every alert.
// Routes choose troubles and reminders; a resolution goes wherever its
// trouble went.
type Route struct {
	// MinSeverity is the least severity taken: info, warning or critical.
	MinSeverity string
	// Workspaces, when set, are the only workspaces taken.
	Workspaces []string
}

func (r Route) takes(a *lifecycle.AlertPayload) bool {
	if r.MinSeverity != "" && lifecycle.SeverityRank(a.Severity) < lifecycle.SeverityRank(r.MinSeverity) {
		return false
	}
	return len(r.Workspaces) == 0 || slices.Contains(r.Workspaces, a.WorkspaceID)
}

// routeTo lists the configured sinks that take a trouble or reminder alert.
func (s *Store) routeTo(a *lifecycle.AlertPayload) []string {
	out := []string{}
	for _, name := range s.cfg.Sinks {
		if r, ok := s.cfg.Routes[name]; !ok || r.takes(a) {
			out = append(out, name)
		}
	}
	return out
}

// union is a followed by what of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// alertCols is what gate writes of a code's row: what its sinks were told.
type alertCols struct {
	alerted   *string
	sinks     []string // nil: NULL
	lastAlert *time.Time
}

// alertState reads what a row says its sinks were told, and the sinks that
// hold its open trouble. A row whose alerted_key is not its trouble was
// alerted by a version before routing (or a replica still running one),
// which sent every alert to every sink: its trouble is open at all of them.
func (s *Store) alertState(r *codeRow) (lifecycle.AlertState, []string) {
	st := lifecycle.AlertState{Needs: r.NeedsTroubleshooting, TroubleKey: deref(r.troubleKey)}
	if !st.Needs {
		return st, nil
	}
	st.AlertedKey = st.TroubleKey
	sinks := r.alertSinks
	if deref(r.alerted) != st.TroubleKey || sinks == nil {
		sinks = s.cfg.Sinks
	}
	return st, sinks
}

// gate decides each change's alert (see the file's comment): which sinks it
// goes to (c.sinks) and what the row records (c.cols); a resolution of a
// trouble no sink was told of is dropped, and gives its sequence number
// back, so a code's alerts stay numbered 1, 2, 3...
func (s *Store) gate(now time.Time, changes []change) {
	for i := range changes {
		c := &changes[i]
		if c.alert == nil {
			continue
		}
		if c.alert.Type == lifecycle.AlertResolved {
			s.gateResolved(c.old, c.alert, c)
			continue
		}
		st, open := s.alertState(c.old)
		c.sinks, c.cols = s.sendTrouble(c.alert, lifecycle.GateTrouble(st, c.flag.Key), open, now)
	}
}

// sendTrouble completes a trouble (or reminder) alert: the trouble it
// replaces, and its sinks (the route's, and those holding the trouble it
// replaces or repeats, so they hear it is replaced or still there).
func (s *Store) sendTrouble(a *lifecycle.AlertPayload, g lifecycle.Gated, open []string, now time.Time) ([]string, *alertCols) {
	if g.PreviousKey != "" {
		a.PreviousTroubleID = lifecycle.TroubleID(a.AccessCodeID, g.PreviousKey)
	}
	sinks := union(s.routeTo(a), open)
	return sinks, &alertCols{alerted: &g.Key, sinks: sinks, lastAlert: &now}
}

// gateResolved completes a resolution: it names the trouble the sinks were
// told of and goes where that went. One of a trouble no sink was told of is
// dropped (Transition raises none; kept for safety).
func (s *Store) gateResolved(r *codeRow, a *lifecycle.AlertPayload, c *change) {
	st, open := s.alertState(r)
	g := lifecycle.GateResolved(st)
	c.cols = &alertCols{}
	if !g.Send {
		c.alert, r.alertSeq = nil, r.alertSeq-1
		return
	}
	a.TroubleID = lifecycle.TroubleID(a.AccessCodeID, g.Key)
	c.sinks = open
}

// queueAlertCols writes what gate decided of each row, and its alert
// numbers (after the caller's own UPDATE of the rows, on the same batch).
// The columns are in no index: a HOT update of the few codes whose alerts
// changed.
func queueAlertCols(b *pgx.Batch, changes []change) {
	var ids []string
	var alerted, sinks []*string
	var last []*time.Time
	var seq []int64
	for _, c := range changes {
		if c.cols == nil {
			continue
		}
		ids, alerted, last = append(ids, c.old.AccessCodeID), append(alerted, c.cols.alerted), append(last, c.cols.lastAlert)
		seq = append(seq, c.old.alertSeq)
		var list *string
		if c.cols.sinks != nil {
			j := strings.Join(c.cols.sinks, ",") // sink names hold no comma
			list = &j
		}
		sinks = append(sinks, list)
	}
	if len(ids) == 0 {
		return
	}
	// string_to_array('', ',') is '{}': a trouble alerted to no sink.
	b.Queue(`UPDATE access_codes c SET alerted_key = u.alerted, alert_sinks = string_to_array(u.sinks, ','),
			last_alert_at = u.last, alert_seq = u.seq
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])
			AS u(id, alerted, sinks, last, seq)
		WHERE c.access_code_id = u.id`, ids, alerted, sinks, last, seq)
}

// writeAlerts writes changes whose rows only gain alerts (reminders): what
// gate decided, and the alerts.
func (s *Store) writeAlerts(ctx context.Context, tx pgx.Tx, changes []change) error {
	alerts, sinks := make([]*lifecycle.AlertPayload, 0, len(changes)), make([][]string, 0, len(changes))
	for _, c := range changes {
		alerts, sinks = append(alerts, c.alert), append(sinks, c.sinks)
	}
	b := &pgx.Batch{}
	queueAlertCols(b, changes)
	if err := s.queueAlerts(ctx, tx, b, alerts, sinks); err != nil {
		return unavailable(err)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return unavailable(err)
	}
	return nil
}
