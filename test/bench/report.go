package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func printLevel(w io.Writer, lv *level) {
	st := lv.st
	fmt.Fprintf(w, "\n## concurrency %d\n", lv.conc)
	fmt.Fprintf(w, "  events/s    %.0f  (%d answered 2xx inside the %s window; %d requests started in it, %d errors; %d sent in all)\n",
		st.eventsPerSec, st.completed, lv.load.measure, st.started, st.errors, lv.load.sentEvents)
	fmt.Fprintf(w, "  latency     p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms (client side)\n",
		ms(st.p50), ms(st.p90), ms(st.p99), ms(st.max))
	if lv.hist.count > 0 {
		fmt.Fprintf(w, "  server      ingest histogram: p50 %.2f ms  p99 %.2f ms  mean %.2f ms over %.0f deliveries (%.0f stored)\n",
			lv.hist.quantile(0.5)*1000, lv.hist.quantile(0.99)*1000, lv.hist.mean()*1000, lv.hist.count, lv.stored)
	}
	if lv.db.ok && st.completed > 0 {
		fmt.Fprintf(w, "  database    %.0f write transactions (%.1f events each), %.0f WAL bytes/event, ≈%.0f WAL syncs (%.1f events each)\n",
			lv.db.xacts, float64(st.completed)/max(lv.db.xacts, 1), lv.db.walBytes/float64(st.completed),
			lv.db.walSyncs, float64(st.completed)/max(lv.db.walSyncs, 1))
	}
	fmt.Fprintf(w, "  CPU         service %.2f cores (kernel %.2f), postgres %.2f (kernel %.2f), driver %.2f, interrupts %.2f, other %.2f; machine %.2f of %d busy\n",
		cores(lv.cpu.service, lv.wall), cores(lv.cpu.serviceSys, lv.wall), cores(lv.cpu.postgres, lv.wall),
		cores(lv.cpu.postgresSys, lv.wall), cores(lv.cpu.driver, lv.wall), cores(lv.cpu.machineIRQ, lv.wall),
		cores(lv.cpu.other(), lv.wall), cores(lv.cpu.machineBusy, lv.wall), runtime.NumCPU())
	if o := cores(lv.cpu.other(), lv.wall); o > 0.25 {
		fmt.Fprintf(w, "  WARNING     other processes and kernel threads used %.2f cores during this level (see below): unless they are\n"+
			"              kernel writeback for the WAL, the figures understate this machine\n", o)
	}
	if len(lv.cpu.top) > 0 {
		var parts []string
		for _, p := range lv.cpu.top {
			parts = append(parts, fmt.Sprintf("%s[%d] %.2f", p.comm, p.pid, cores(p.sec, lv.wall)))
		}
		fmt.Fprintf(w, "  other CPU   busiest other processes (cores): %s\n", strings.Join(parts, ", "))
	}
	if st.completed > 0 {
		per := func(sec float64) float64 { return sec / float64(st.completed) * 1e6 }
		fmt.Fprintf(w, "  CPU/event   service %.0f µs, postgres %.0f µs, driver %.0f µs\n",
			per(lv.cpu.service), per(lv.cpu.postgres), per(lv.cpu.driver))
	}
	fmt.Fprintf(w, "  memory      service VmHWM %.1f MiB (peak so far), VmRSS %.1f MiB; Go heap in use %.1f MiB, %.0f goroutines, %.0f GC cycles (%.1f ms of pauses), %.1f KiB allocated per event\n",
		kib(lv.hwmKiB), kib(lv.rssKiB), lv.heap/(1<<20), lv.gorout, lv.gc, lv.gcPause*1000, lv.alloc/1024/float64(max(st.completed, 1)))
	if len(lv.load.errKinds) > 0 {
		keys := make([]string, 0, len(lv.load.errKinds))
		for k := range lv.load.errKinds {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  errors      %d × %s\n", lv.load.errKinds[k], k)
		}
	}
}

func printStatements(w io.Writer, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "  pg_stat_statements (the window, by total execution time):")
	for _, l := range lines {
		fmt.Fprintln(w, "    "+l)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func fmtInt(n float64) string {
	if math.IsNaN(n) {
		return "–"
	}
	s := strconv.FormatInt(int64(math.Round(n)), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func printSummary(w io.Writer, o *options, levels []*level, atk *attackReport, vr *verifyReport, sw *sweepReport, finalHWM int64, took time.Duration) {
	fmt.Fprintf(w, "\n## Summary (paste into the issue note / docs/operations.md)\n\n")
	fmt.Fprintf(w, "`make bench` on %d CPUs, Postgres with fsync=on and synchronous_commit=on on the same machine as the service and the load driver; closed loop, %s per level after %s warm-up; service %s.\n\n",
		runtime.NumCPU(), o.duration, o.warmup, envSummary(o.env))
	fmt.Fprintln(w, "| concurrency | events/s | p50 ms | p99 ms | errors | pgbench tps (1 tx/event) | service / pgbench | service CPU | Postgres CPU | RSS MiB peak / now |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var at *level
	for _, lv := range levels {
		tps, ratio := "–", "–"
		if lv.pgb != nil {
			tps = fmtInt(lv.pgb.tps)
			ratio = fmt.Sprintf("%.2f", lv.st.eventsPerSec/lv.pgb.tps)
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %.1f | %d | %s | %s | %.2f cores | %.2f cores | %.1f / %.1f |\n",
			lv.conc, fmtInt(lv.st.eventsPerSec), ms(lv.st.p50), ms(lv.st.p99), lv.st.errors, tps, ratio,
			cores(lv.cpu.service, lv.wall), cores(lv.cpu.postgres, lv.wall), kib(lv.hwmKiB), kib(lv.rssKiB))
		if lv.conc == targetConc {
			at = lv
		}
	}
	var other float64
	for _, lv := range levels {
		other = max(other, cores(lv.cpu.other(), lv.wall))
	}
	if other > 0.25 {
		fmt.Fprintf(w, "\nNote: processes outside the benchmark (and kernel threads) used up to %.2f of the %d cores during the levels; the figures may understate this machine.\n", other, runtime.NumCPU())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | result |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, lv := range levels {
		want, ok := targetRatios[lv.conc]
		if !ok {
			continue
		}
		if lv.pgb != nil {
			r := lv.st.eventsPerSec / lv.pgb.tps
			fmt.Fprintf(w, "| service / pgbench at concurrency %d ≥ %.1f | %.2f | %s |\n", lv.conc, want, r, passFail(r >= want))
		} else {
			fmt.Fprintf(w, "| service / pgbench at concurrency %d ≥ %.1f | not measured | – |\n", lv.conc, want)
		}
	}
	if at != nil {
		fmt.Fprintf(w, "| p99 at concurrency %d < %d ms | %.1f ms | %s |\n", targetConc, targetP99/time.Millisecond, ms(at.st.p99), passFail(at.st.p99 < targetP99))
	} else {
		fmt.Fprintf(w, "| p99 at concurrency %d | level not run | – |\n", targetConc)
	}
	var loadHWM int64
	for _, lv := range levels {
		loadHWM = max(loadHWM, lv.hwmKiB)
	}
	fmt.Fprintf(w, "| service peak RSS under the load < %d MiB | %.1f MiB | %s |\n", targetRSSKiB>>10, kib(loadHWM), passFail(loadHWM > 0 && loadHWM < targetRSSKiB))
	if atk != nil {
		fmt.Fprintf(w, "| %d forged 1 MiB uploads at once: service peak RSS < %d MiB | %.1f MiB | %s |\n",
			atk.attackers, targetAttackRSSKiB>>10, kib(atk.peakRSSKiB), passFail(atk.peakRSSKiB > 0 && atk.peakRSSKiB < targetAttackRSSKiB))
		fmt.Fprintf(w, "| meanwhile signed events: p99 < %d ms, all 2xx | p99 %.1f ms, %d of %d not 2xx | %s |\n",
			targetAttackP99/time.Millisecond, ms(atk.signed.p99), atk.signed.errors, atk.signed.started,
			passFail(atk.signed.p99 < targetAttackP99 && atk.signed.errors == 0 && atk.signed.started > 0))
	}
	if sw != nil && sw.duration > 0 {
		fmt.Fprintf(w, "| one sweep of %s codes (%s overdue) < %s | %s (%d flagged, %s) | %s |\n",
			fmtInt(float64(sw.codes)), fmtInt(float64(sw.overdue)), targetSweep, sw.duration.Round(time.Millisecond),
			sw.flagged, map[bool]string{true: "uses access_codes_unconfirmed_idx", false: "NOT using access_codes_unconfirmed_idx"}[sw.usesIndex],
			passFail(sw.duration < targetSweep && sw.ok()))
	} else if o.skipSweep {
		fmt.Fprintln(w, "| sweep < 1 s | skipped | – |")
	}
	if vr != nil {
		fmt.Fprintf(w, "| every 2xx stored exactly once | %s acknowledged, %d missing, %d duplicated | %s |\n",
			fmtInt(float64(vr.acked)), vr.missing, vr.dupMsg+vr.badEvt, passFail(len(vr.problems) == 0))
	}
	fmt.Fprintf(w, "\n(run took %s)\n", took.Round(time.Second))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func kib(k int64) float64 { return float64(k) / 1024 }

func cores(sec float64, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return sec / wall.Seconds()
}
