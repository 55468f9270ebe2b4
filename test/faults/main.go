// Command faults is codewatch's fault-injection suite: it runs the real
// binary against a real Postgres under a Svix-like load, injects real faults
// (kill -9, Postgres shutdown and crash, SIGTERM, pool exhaustion, a burst,
// a read-only database) and proves that every webhook codewatch answered 2xx
// is stored exactly once with the right state and alerts.
//
//	go run ./test/faults -bin bin/codewatch [-short] [-run REGEXP] [-md FILE]
//
// It exits 1 when any invariant is violated (or a run is void) and prints a
// table of the figures. docs/reliability.md explains each scenario and
// invariant.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin/codewatch", "the codewatch binary to test")
	short := fs.Bool("short", false, "CI sizes: every scenario, shorter and slower")
	only := fs.String("run", "", "run only the scenarios whose key matches this regexp")
	md := fs.String("md", "", "also write the results as Markdown to this file")
	seed := fs.Uint64("seed", 0, "workload seed (0: from the clock)")
	verbose := fs.Bool("v", false, "print every note")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	abs, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "faults: -bin %s: %v (run `make build` first)\n", *bin, err)
		return 2
	}
	var re *regexp.Regexp
	if *only != "" {
		if re, err = regexp.Compile(*only); err != nil {
			fmt.Fprintln(stderr, "faults: -run:", err)
			return 2
		}
	}
	p := fullParams
	mode := "full"
	limit := 25 * time.Minute
	if *short {
		p, mode, limit = shortParams, "short", 8*time.Minute
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))

	// Ctrl-C or SIGTERM: stop, clean up, exit non-zero. A hard deadline
	// bounds the whole run.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, limit)
	defer cancel()

	started := time.Now()
	fmt.Fprintf(stdout, "codewatch fault suite (%s): %s, seed %d, %d CPUs\n", mode, abs, *seed, runtime.NumCPU())
	fmt.Fprintf(stdout, "  load %.0f msg/s for %s per scenario, %d fault(s) each, retry budget %s, CODEWATCH_DB_MAX_CONNS=%d\n",
		p.Rate, p.Load, p.Injections, p.Budget, dbMaxConns)

	h, err := newHarness(ctx, abs, *verbose)
	var once sync.Once
	cleanup := func() { once.Do(h.cleanup) }
	defer cleanup()
	// If the checks do not return promptly after a signal, clean up and
	// leave anyway.
	go func() {
		<-sigCtx.Done()
		select {
		case <-time.After(20 * time.Second):
			fmt.Fprintln(stderr, "faults: interrupted; cleaning up")
			cleanup()
			os.Exit(130)
		case <-time.After(limit + time.Hour):
		}
	}()
	if err != nil {
		fmt.Fprintln(stderr, "faults: setup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "  Postgres %s on port %d (fsync on), codewatch on %s (ops %s)\n\n", h.pg.Dir, h.pg.Port, h.pubAddr, h.opsAddr)

	var results []*result
	for _, sc := range scenarios() {
		if re != nil && !re.MatchString(sc.key) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stdout, "== %s: %s\n", sc.key, sc.title)
		res := runScenario(ctx, h, &p, sc, rng)
		results = append(results, res)
		printResult(stdout, res, *verbose)
	}

	fmt.Fprintln(stdout)
	printTable(stdout, results)
	failed := 0
	for _, r := range results {
		if len(r.violations) > 0 || r.void {
			failed++
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stdout, "\nFAIL: interrupted or over the time limit:", ctx.Err())
		failed++
	}
	if *md != "" {
		if err := writeMarkdown(*md, mode, *seed, &p, results, time.Since(started)); err != nil {
			fmt.Fprintln(stderr, "faults: -md:", err)
			failed++
		}
	}
	fmt.Fprintf(stdout, "\n%d scenario(s) in %s: ", len(results), time.Since(started).Round(time.Second))
	if failed > 0 {
		fmt.Fprintln(stdout, "FAIL")
		return 1
	}
	fmt.Fprintln(stdout, "every invariant held")
	return 0
}

func printResult(w io.Writer, r *result, verbose bool) {
	if r.skipped != "" {
		fmt.Fprintf(w, "   skipped: %s\n", r.skipped)
		return
	}
	status := "ok"
	if r.void {
		status = "VOID"
	} else if len(r.violations) > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(w, "   %s in %s: %d codes, %d events, %d messages sent, %d acknowledged, %d retries, %d given up; "+
		"p50 %s p99 %s max %s; non-2xx %s; no answer: %s; alerts %d trouble / %d resolved\n",
		status, r.elapsed.Round(100*time.Millisecond), r.codes, r.events, r.sent, r.acked, r.retries, r.gaveUp,
		ms(r.p50), ms(r.p99), ms(r.maxLatency), non2xx(r), kinds(r.netErrs), r.trouble, r.resolved)
	fmt.Fprintf(w, "   %d lifecycles sent shuffled; answered as duplicates: %d same svix-id, %d new svix-id (same event_id), %d originals (a racing copy won, or a retry after a lost answer); "+
		"%d events stored whose \"stored\" answer was lost\n",
		r.shuffled, r.dupAnswers[dupSameID], r.dupAnswers[dupNewID], r.dupAnswers[dupNone], r.answerLost)
	for _, n := range r.notes {
		if verbose || !strings.HasPrefix(n, "codewatch log") || len(r.violations) > 0 {
			fmt.Fprintf(w, "   - %s\n", n)
		}
	}
	for _, v := range r.violations {
		fmt.Fprintf(w, "   ! %s\n", v)
	}
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

func non2xx(r *result) string {
	if len(r.statuses) == 0 {
		return "0"
	}
	return fmtStatuses(r.statuses)
}

// fmtStatuses formats status counts as "count×status", by status.
func fmtStatuses(m map[int]int) string {
	var sts []int
	for st := range m {
		sts = append(sts, st)
	}
	sort.Ints(sts)
	var parts []string
	for _, st := range sts {
		parts = append(parts, fmt.Sprintf("%d×%d", m[st], st))
	}
	return strings.Join(parts, " ")
}

func noAnswer(r *result) int {
	n := 0
	for _, v := range r.netErrs {
		n += v
	}
	return n
}

func recovery(r *result) string {
	if r.faults == 0 {
		return "-"
	}
	return ms(r.recovery)
}

func verdict(r *result) string {
	switch {
	case r.void:
		return "VOID"
	case len(r.violations) > 0:
		return fmt.Sprintf("FAIL (%d)", len(r.violations))
	}
	return "ok"
}

var tableHeader = []string{"scenario", "sent", "events", "acked", "retried", "gave up", "lost", "duplicated",
	"p99 latency", "max recovery", "non-2xx", "no answer", "hung", "alerts T/R", "result"}

func tableRow(r *result) []string {
	if r.skipped != "" {
		row := make([]string, len(tableHeader))
		row[0], row[len(row)-1] = r.name, "skipped"
		for i := 1; i < len(row)-1; i++ {
			row[i] = "-"
		}
		return row
	}
	return []string{r.name, fmt.Sprint(r.sent), fmt.Sprint(r.events), fmt.Sprint(r.acked), fmt.Sprint(r.retries),
		fmt.Sprint(r.gaveUp), fmt.Sprint(r.lost), fmt.Sprint(r.duplicated), ms(r.p99), recovery(r),
		non2xx(r), fmt.Sprint(noAnswer(r)), fmt.Sprint(r.hung), fmt.Sprintf("%d/%d", r.trouble, r.resolved), verdict(r)}
}

func printTable(w io.Writer, results []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(tableRow(r), "\t"))
	}
	tw.Flush()
	for _, r := range results {
		for _, v := range r.violations {
			fmt.Fprintf(w, "%s: %s\n", r.name, v)
		}
	}
}

func writeMarkdown(path, mode string, seed uint64, p *params, results []*result, took time.Duration) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Run of %s (%s mode, seed %d, %s), %d CPUs (%s/%s, host %s), %s in all.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), mode, seed, runtime.Version(), runtime.NumCPU(),
		runtime.GOOS, runtime.GOARCH, host, took.Round(time.Second))
	fmt.Fprintf(&b, "Parameters: %.0f msg/s for %s per scenario, %d fault(s) per fault scenario, retry budget %s, "+
		"burst %.0fx for %s, %d waves of %d messages with %d ops API readers, CODEWATCH_DB_MAX_CONNS=%d, "+
		"Postgres fsync on.\n\n",
		p.Rate, p.Load, p.Injections, p.Budget, p.BurstFactor, p.BurstLen, p.Waves, p.WaveSize, p.OpsReaders, dbMaxConns)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(tableHeader, " | "), strings.Repeat(" --- |", len(tableHeader)))
	for _, r := range results {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(tableRow(r), " | "))
	}
	b.WriteString("\nWhat the workload exercised, per scenario:\n\n")
	b.WriteString("| scenario | codes | shuffled | answered duplicate: same svix-id | new svix-id, same event | original | answer lost | no answer, by kind |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		if r.skipped != "" {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", r.name, r.codes, r.shuffled,
			r.dupAnswers[dupSameID], r.dupAnswers[dupNewID], r.dupAnswers[dupNone], r.answerLost, kinds(r.netErrs))
	}
	b.WriteString("\n")
	for _, r := range results {
		for _, n := range r.notes {
			if !strings.HasPrefix(n, "codewatch log") {
				fmt.Fprintf(&b, "- %s: %s\n", r.name, strings.TrimPrefix(n, r.name+": "))
			}
		}
		for _, v := range r.violations {
			fmt.Fprintf(&b, "- %s: **violation**: %s\n", r.name, v)
		}
		if r.skipped != "" {
			fmt.Fprintf(&b, "- %s: skipped: %s\n", r.name, r.skipped)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func kinds(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
