package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
)

// The read benchmark's checks of the database: the plans of the reads it
// measures, and the summary's counts after the load.

// explainReads prints the plan of every statement the measured reads run
// and returns what is wrong with them: a sequential scan, or a list
// segment that sorts more than a page of rows.
func explainReads(ctx context.Context, store *postgres.Store, env *readsEnv, o *options, logf func(string, ...any)) []string {
	yes := true
	var states []lifecycle.DeletionState
	for _, s := range strings.Split(o.readStates, ",") {
		states = append(states, lifecycle.DeletionState(strings.TrimSpace(s)))
	}
	type read struct {
		name    string
		explain func() ([]postgres.Plan, error)
	}
	reads := []read{
		{"summary", func() ([]postgres.Plan, error) { return store.ExplainSummary(ctx) }},
		{"needs_troubleshooting=true", func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{NeedsTroubleshooting: &yes})
		}},
		{"device_id=", func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{DeviceID: env.deviceIDs[0]})
		}},
		{"deletion_state=" + o.readStates, func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{States: states})
		}},
		{"console home (the summary above, and)", func() ([]postgres.Plan, error) {
			return store.ExplainList(ctx, lifecycle.ListFilter{NeedsTroubleshooting: &yes, Limit: 200})
		}},
		{"access code", func() ([]postgres.Plan, error) { return store.ExplainGetAccessCode(ctx, env.codeIDs[0]) }},
		{"device", func() ([]postgres.Plan, error) { return store.ExplainGetDevice(ctx, env.deviceIDs[0]) }},
	}
	var problems []string
	for _, r := range reads {
		plans, err := r.explain()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", r.name, err))
			continue
		}
		for _, p := range plans {
			logf("%s, %s:\n%s", r.name, p.Read, indent(p.Plan))
			// code_counts is read whole on purpose (a few pages).
			if strings.Contains(strings.ReplaceAll(p.Plan, "Seq Scan on code_counts", ""), "Seq Scan") {
				problems = append(problems, fmt.Sprintf("%s, %s: a sequential scan", r.name, p.Read))
			}
			if strings.HasPrefix(p.Read, "list") && sortsMoreThan(p.Plan, lifecycle.MaxListLimit+1) {
				problems = append(problems, fmt.Sprintf("%s, %s: sorts more rows than a page", r.name, p.Read))
			}
		}
	}
	return problems
}

// sortsMoreThan reports a Sort node whose input the planner expects to be
// larger than n rows (the line under the Sort).
func sortsMoreThan(plan string, n int) bool {
	lines := strings.Split(plan, "\n")
	for i, l := range lines {
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->"))
		if !strings.HasPrefix(t, "Sort ") || strings.HasPrefix(t, "Sort Key") {
			continue
		}
		for _, below := range lines[i+1:] {
			b := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(below), "->"))
			if strings.HasPrefix(b, "Sort Key") || strings.HasPrefix(b, "Sort Method") {
				continue
			}
			if rows := planRows(b); rows > n {
				return true
			}
			break
		}
	}
	return false
}

// planRows reads the estimated rows of a plan line ("rows=123").
func planRows(line string) int {
	_, after, ok := strings.Cut(line, "rows=")
	if !ok {
		return 0
	}
	var n int
	fmt.Sscanf(after, "%d", &n)
	return n
}

// checkSummaryCounts compares the summary the service answers with a count
// of the codes, once the ingest has stopped.
func checkSummaryCounts(ctx context.Context, e *readsEnv, store *postgres.Store) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.svc.opsURL+"/v1/summary", nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		Summary lifecycle.StatusSummary `json:"summary"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	got := v.Summary
	t := time.Now()
	counted, needs, err := store.CountCodesByState(ctx)
	if err != nil {
		return "", err
	}
	var total int64
	for _, n := range counted {
		total += n
	}
	took := time.Since(t)
	for _, st := range lifecycle.States {
		if got.DeletionStates[st] != counted[st] {
			return "", fmt.Errorf("%s: summary %d, counted %d", st, got.DeletionStates[st], counted[st])
		}
	}
	if got.Total != total || got.NeedsTroubleshooting != needs {
		return "", fmt.Errorf("total %d / needs %d, counted %d / %d", got.Total, got.NeedsTroubleshooting, total, needs)
	}
	return fmt.Sprintf("summary counts after the load equal a count of the codes: %s codes, %s needing troubleshooting (counting them took %s)",
		fmtInt(float64(total)), fmtInt(float64(needs)), took.Round(time.Millisecond)), nil
}
