package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/postgres"
)

// verifyReport compares the database with the driver's ledger.
type verifyReport struct {
	acked         int
	dbEvents      int64
	dbDistinctMsg int64
	dbDistinctEvt int64
	missing       int64
	dupMsg        int64
	badEvt        int64
	mismatched    int64
	extra         int64 // stored but not acknowledged (answered non-2xx)
	completeCodes int
	foldOK        int64
	alerts        map[string]int64
	problems      []string
}

func verifyStored(ctx context.Context, url, run string, levels []*level) (*verifyReport, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	store := postgres.New(pool, nil, postgres.Config{})
	vr := &verifyReport{alerts: map[string]int64{}}
	var msgs, eids, complete []string
	seen := make(map[string]struct{})
	for _, lv := range levels {
		stagesOf := map[int64]int{}
		for _, a := range lv.load.ledger {
			if _, dup := seen[a.msgID]; dup {
				vr.problems = append(vr.problems, "driver ledger holds message "+a.msgID+" twice (driver bug)")
			}
			seen[a.msgID] = struct{}{}
			msgs, eids = append(msgs, a.msgID), append(eids, a.eventID)
			stagesOf[a.code] |= 1 << a.stage
		}
		for code, mask := range stagesOf {
			if mask == 1<<stagesPerCode-1 {
				complete = append(complete, codeID(run, lv.conc, code))
			}
		}
	}
	vr.acked = len(msgs)
	vr.completeCodes = len(complete)

	so, err := store.CountStoredOnce(ctx, msgs, eids)
	if err != nil {
		return nil, err
	}
	vr.dbEvents, vr.dbDistinctMsg, vr.dbDistinctEvt = so.Events, so.DistinctMessages, so.DistinctEvents
	vr.missing, vr.dupMsg, vr.badEvt, vr.mismatched = so.Missing, so.DuplicatedMessages, so.NotOnceByEvent, so.Mismatched
	vr.extra = vr.dbEvents - int64(vr.acked) + vr.missing
	if vr.foldOK, err = store.CountRemovedUntroubled(ctx, complete); err != nil {
		return nil, err
	}
	if vr.alerts, err = store.CountAlertsByType(ctx); err != nil {
		return nil, err
	}

	if vr.dbEvents != vr.dbDistinctMsg || vr.dbEvents != vr.dbDistinctEvt {
		vr.problems = append(vr.problems, fmt.Sprintf("events table: %d rows but %d distinct message_id and %d distinct event_id",
			vr.dbEvents, vr.dbDistinctMsg, vr.dbDistinctEvt))
	}
	if vr.missing > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d events answered 2xx are not in the database", vr.missing))
	}
	if vr.dupMsg > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d acknowledged message ids stored more than once", vr.dupMsg))
	}
	if vr.badEvt > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d acknowledged event ids not stored exactly once", vr.badEvt))
	}
	if vr.mismatched > 0 {
		vr.problems = append(vr.problems, fmt.Sprintf("%d acknowledged messages stored with another event id", vr.mismatched))
	}
	if vr.foldOK != int64(vr.completeCodes) {
		vr.problems = append(vr.problems, fmt.Sprintf("%d of %d codes whose whole lifecycle was acknowledged are not removed and untroubled",
			int64(vr.completeCodes)-vr.foldOK, vr.completeCodes))
	}
	if vr.acked == 0 {
		vr.problems = append(vr.problems, "no event was acknowledged")
	}
	return vr, nil
}

func printVerify(w io.Writer, vr *verifyReport) {
	fmt.Fprintf(w, "\n## exactly once\n")
	fmt.Fprintf(w, "  driver ledger: %d events answered 2xx (warm-up included)\n", vr.acked)
	fmt.Fprintf(w, "  database:      %d events, %d distinct message_id, %d distinct event_id\n",
		vr.dbEvents, vr.dbDistinctMsg, vr.dbDistinctEvt)
	fmt.Fprintf(w, "  acknowledged:  %d missing, %d duplicated by message_id, %d not once by event_id, %d with another event_id\n",
		vr.missing, vr.dupMsg, vr.badEvt, vr.mismatched)
	fmt.Fprintf(w, "  unacknowledged but stored (answered non-2xx, allowed): %d\n", vr.extra)
	fmt.Fprintf(w, "  fold: %d of %d codes with a fully acknowledged lifecycle are removed and untroubled\n", vr.foldOK, vr.completeCodes)
	keys := make([]string, 0, len(vr.alerts))
	for k := range vr.alerts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  alerts: %d %s\n", vr.alerts[k], k)
	}
	if len(vr.problems) == 0 {
		fmt.Fprintf(w, "  PASS: every acknowledged event is stored exactly once\n")
	}
}
