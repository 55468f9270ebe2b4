package main

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

// The read benchmark's output: each phase, then the summary tables.

func printReadPhase(logf func(string, ...any), ph *readPhase) {
	if ph.closed {
		logf("\n## %s (closed loop)", ph.name)
	} else {
		logf("\n## %s", ph.name)
	}
	if ph.kind != nil || ph.mixed {
		st := ph.readSt
		logf("  reads       %d (%.0f/s), %d errors; p50 %.2f ms  p99 %.2f ms  max %.2f ms", st.n, st.perSec, st.errors,
			ms(st.p50), ms(st.p99), ms(st.max))
		for k, v := range ph.errs {
			logf("  errors      %d × %s", v, k)
		}
		keys := make([]string, 0, len(ph.perKind))
		for k := range ph.perKind {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := ph.perKind[k]
			logf("    %-60s p50 %.2f ms  p99 %.2f ms (%d)", k, ms(v.p50), ms(v.p99), v.n)
		}
	}
	if ph.server.count > 0 {
		logf("  server      ingest histogram: p50 %.2f ms  p99 %.2f ms over %.0f deliveries",
			ph.server.quantile(0.5)*1000, ph.server.quantile(0.99)*1000, ph.server.count)
	}
	logf("  CPU         service %.2f cores, postgres %.2f, driver %.2f, other %.2f; machine %.2f of %d busy",
		cores(ph.cpu.service, ph.wall), cores(ph.cpu.postgres, ph.wall), cores(ph.cpu.driver, ph.wall),
		cores(ph.cpu.other(), ph.wall), cores(ph.cpu.machineBusy, ph.wall), runtime.NumCPU())
	if len(ph.cpu.top) > 0 && cores(ph.cpu.other(), ph.wall) > 0.25 {
		var parts []string
		for _, p := range ph.cpu.top {
			parts = append(parts, fmt.Sprintf("%s[%d] %.2f", p.comm, p.pid, cores(p.sec, ph.wall)))
		}
		logf("  other CPU   %s", strings.Join(parts, ", "))
	}
}

// neighbours returns the ingest-only phases just before and after phase i.
func neighbours(phases []*readPhase, i int) []*readPhase {
	var out []*readPhase
	if i > 0 && phases[i-1].kind == nil && !phases[i-1].mixed {
		out = append(out, phases[i-1])
	}
	if i+1 < len(phases) && phases[i+1].kind == nil && !phases[i+1].mixed {
		out = append(out, phases[i+1])
	}
	return out
}

func meanP99(ps []*readPhase) time.Duration {
	if len(ps) == 0 {
		return 0
	}
	var sum time.Duration
	for _, p := range ps {
		sum += p.ingest.p99
	}
	return sum / time.Duration(len(ps))
}

func printReadsSummary(logf func(string, ...any), o *options, e *readsEnv, phases []*readPhase, took time.Duration) {
	logf("\n## Summary (paste into the issue note / docs/operations.md)\n")
	logf("`make bench-reads` on %d CPUs: %s codes and %s events on %s locks, Postgres 15 (fsync on, shared_buffers 1GB), "+
		"service and load driver on one machine; signed webhooks at %d events/s throughout (latency from when each was due); "+
		"%d readers (%s), one read at a time, %s per row after %s warm-up, each between two windows of ingest alone.\n",
		runtime.NumCPU(), fmtInt(float64(e.codes)), fmtInt(float64(e.events)), fmtInt(float64(o.readDevices)), o.ingestRate,
		o.readers, readerMode(o, false), o.readDuration, o.readWarmup)
	header := func() {
		logf("| read | reads/s | p50 ms | p99 ms | ingest events/s | ingest p99 ms | without readers (before, after) | service CPU | Postgres CPU | other CPU |")
		logf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	}
	row := func(i int) {
		ph := phases[i]
		in, st := ph.ingest, ph.readSt
		errs := ""
		if st.errors > 0 {
			errs = fmt.Sprintf(" (%d errors)", st.errors)
		}
		var nb []string
		for _, n := range neighbours(phases, i) {
			nb = append(nb, fmt.Sprintf("%.1f", ms(n.ingest.p99)))
		}
		logf("| %s | %s%s | %.1f | %.1f | %s | %.1f | %s | %.2f | %.2f | %.2f |", ph.name, fmtInt(st.perSec), errs, ms(st.p50), ms(st.p99),
			fmtInt(in.perSec), ms(in.p99), strings.Join(nb, ", "), cores(ph.cpu.service, ph.wall), cores(ph.cpu.postgres, ph.wall),
			cores(ph.cpu.other(), ph.wall))
	}
	reads := func(closed bool) []int {
		var out []int
		for i, ph := range phases {
			if (ph.kind != nil || ph.mixed) && ph.closed == closed {
				out = append(out, i)
			}
		}
		return out
	}
	header()
	for _, i := range reads(false) {
		row(i)
	}
	var alone []*readPhase
	for _, ph := range phases {
		if ph.kind == nil && !ph.mixed {
			alone = append(alone, ph)
		}
	}
	var cs, cp, co float64
	var wall time.Duration
	for _, ph := range alone {
		cs, cp, co, wall = cs+ph.cpu.service, cp+ph.cpu.postgres, co+ph.cpu.other(), wall+ph.wall
	}
	logf("| (ingest alone, %d windows) | – | – | – | %s | %.1f (mean) | – | %.2f | %.2f | %.2f |", len(alone),
		fmtInt(float64(o.ingestRate)), ms(meanP99(alone)), cores(cs, wall), cores(cp, wall), cores(co, wall))
	if o.readCapacity {
		logf("\nCapacity: the same reads with the %d readers in a closed loop (each sends its next request as soon as the previous "+
			"is answered). The machine's two cores are then busy; the service admits a few reads to Postgres at once "+
			"(2 with the default settings) and the others wait their turn, but ingest competes with them for the cores.\n", o.readers)
		header()
		for _, i := range reads(true) {
			row(i)
		}
	}
	logf("\n| target (paced readers) | measured | result |")
	logf("|---|---|---|")
	for _, i := range reads(false) {
		st := phases[i].readSt
		logf("| %s: p99 < %d ms | %.1f ms (%d errors) | %s |", phases[i].name, targetReadP99/time.Millisecond, ms(st.p99), st.errors,
			passFail(st.p99 < targetReadP99 && st.errors == 0 && st.n > 0))
	}
	for _, i := range reads(false) {
		in := phases[i].ingest
		base := meanP99(neighbours(phases, i))
		ratio := float64(in.p99) / float64(max(base, 1))
		rate := in.perSec / float64(o.ingestRate)
		logf("| ingest during %s: ≥ %.0f%% of %d/s answered, p99 within 10%% of ingest alone around it (%.1f ms) | %s events/s, p99 %.1f ms (×%.2f) | %s |",
			phases[i].name, targetIngestRate*100, o.ingestRate, ms(base), fmtInt(in.perSec), ms(in.p99), ratio,
			passFail(ratio <= targetIngestP99Ratio && rate >= targetIngestRate && in.errors == 0))
	}
	logf("\n(run took %s)", took.Round(time.Second))
}

func readerMode(o *options, closed bool) string {
	if closed || o.readInterval <= 0 {
		return "closed loop: each sends its next request as soon as the previous is answered"
	}
	return fmt.Sprintf("each starts a request every %s, %.0f reads/s in all; latency counts from when it was due",
		o.readInterval, float64(o.readers)*float64(time.Second)/float64(o.readInterval))
}

// printIngestPhases prints the ingest of each phase, once every event due
// is answered, and its errors; it fills each phase's ingest figures.
func printIngestPhases(logf func(string, ...any), d *ingestDriver, phases []*readPhase) {
	logf("\n## ingest per phase (latency from when each event was due)")
	for _, ph := range phases {
		ph.ingest = d.stats(ph.from, ph.to)
		in := ph.ingest
		name := ph.name
		if ph.closed {
			name += " (closed loop)"
		}
		logf("  %-75s %5.0f events/s (%d due, %d errors)  p50 %6.2f ms  p99 %7.2f ms  max %7.2f ms; service histogram p99 %.2f ms",
			name, in.perSec, in.due, in.errors, ms(in.p50), ms(in.p99), ms(in.max), ph.server.quantile(0.99)*1000)
	}
	errKinds := make([]string, 0, len(d.errs))
	for k := range d.errs {
		errKinds = append(errKinds, k)
	}
	sort.Strings(errKinds)
	for _, k := range errKinds {
		logf("  ingest errors: %d × %s", d.errs[k], k)
	}
}
