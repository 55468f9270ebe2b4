package main

import (
	"bufio"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/seamevent"
	"github.com/codewatch/codewatch/verify"
)

// Every event of a level is a distinct (code, stage), and every code gets
// its five stages in order, each window events after the previous.
func TestScheduleCoversLifecycles(t *testing.T) {
	for _, conc := range []int{8, 32, 128, 1024} {
		w := windowFor(conc)
		if w < int64(conc)*4 {
			t.Errorf("conc %d: window %d is not well above the concurrency", conc, w)
		}
		seen := map[[2]int64]bool{}
		last := map[int64]int64{} // code -> n of its previous stage
		n := 3 * w * stagesPerCode
		for i := int64(0); i < n; i++ {
			code, stage := schedule(i, w)
			k := [2]int64{code, int64(stage)}
			if seen[k] {
				t.Fatalf("conc %d: event %d repeats code %d stage %d", conc, i, code, stage)
			}
			seen[k] = true
			if stage == 0 {
				if _, ok := last[code]; ok {
					t.Fatalf("code %d started twice", code)
				}
			} else if prev, ok := last[code]; !ok || i-prev != w {
				t.Fatalf("conc %d: code %d stage %d at %d, previous stage at %d (ok %v), want %d apart", conc, code, stage, i, prev, ok, w)
			}
			last[code] = i
		}
		if int64(len(last)) != 3*w {
			t.Errorf("conc %d: %d codes, want %d", conc, len(last), 3*w)
		}
	}
}

func TestEventTypesEndRemoved(t *testing.T) {
	for _, code := range []int64{1, 7, 57} {
		var types []string
		for s := 0; s < stagesPerCode; s++ {
			types = append(types, eventType(code, s))
		}
		if types[0] != "access_code.created" || types[4] != "access_code.removed_from_device" {
			t.Errorf("code %d: %v", code, types)
		}
		del := 0
		for _, ty := range types {
			if ty == "access_code.deleted" {
				del++
			}
		}
		if del != 1 {
			t.Errorf("code %d: %d deletions in %v", code, del, types)
		}
		if troubled(code) != (types[3] == "access_code.delay_in_removing_from_device") {
			t.Errorf("code %d: troubled %v but %v", code, troubled(code), types)
		}
	}
	if codeID("0badc0de", 32, 5) == codeID("0badc0de", 128, 5) {
		t.Error("code ids collide across levels")
	}
}

func TestStatsWindow(t *testing.T) {
	ms := time.Millisecond
	l := &levelLoad{conc: 1, warmup: 100 * ms, measure: 1000 * ms, samples: []sample{
		{start: 50 * ms, end: 120 * ms, ok: true},    // warm-up start: counts for throughput only
		{start: 200 * ms, end: 210 * ms, ok: true},   // 10 ms
		{start: 300 * ms, end: 330 * ms, ok: true},   // 30 ms
		{start: 400 * ms, end: 401 * ms, ok: false},  // error
		{start: 1090 * ms, end: 1150 * ms, ok: true}, // started inside, ended after
		{start: 1200 * ms, end: 1201 * ms, ok: true}, // after the window
	}}
	st := l.stats()
	if st.completed != 3 || st.started != 4 || st.errors != 1 {
		t.Fatalf("completed %d started %d errors %d, want 3 4 1", st.completed, st.started, st.errors)
	}
	if st.eventsPerSec != 3 {
		t.Errorf("events/s %v, want 3", st.eventsPerSec)
	}
	if st.p50 != 30*ms || st.max != 60*ms || st.p99 != 60*ms {
		t.Errorf("p50 %v p99 %v max %v", st.p50, st.p99, st.max)
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := percentile(v, q); got != want {
			t.Errorf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("empty")
	}
}

const promText = `# HELP codewatch_ingest_duration_seconds x
# TYPE codewatch_ingest_duration_seconds histogram
codewatch_ingest_duration_seconds_bucket{le="0.001"} 0
codewatch_ingest_duration_seconds_bucket{le="0.01"} 50
codewatch_ingest_duration_seconds_bucket{le="0.1"} 100
codewatch_ingest_duration_seconds_bucket{le="+Inf"} 100
codewatch_ingest_duration_seconds_sum 2.5
codewatch_ingest_duration_seconds_count 100
codewatch_webhooks_received_total{event_type="access_code.deleted",outcome="stored"} 60
codewatch_webhooks_received_total{event_type="lock.unlocked",outcome="stored"} 40
codewatch_webhooks_received_total{event_type="unknown",outcome="rejected"} 3
go_goroutines 12
`

func TestPromHistogram(t *testing.T) {
	s, err := parseProm(strings.NewReader(promText))
	if err != nil {
		t.Fatal(err)
	}
	if s["go_goroutines"] != 12 {
		t.Errorf("unlabelled series: %v", s["go_goroutines"])
	}
	if got := sumMatching(s, "codewatch_webhooks_received_total", `outcome="stored"`); got != 100 {
		t.Errorf("stored %v, want 100", got)
	}
	h := histogramOf(s, "codewatch_ingest_duration_seconds")
	if len(h.bounds) != 4 || !math.IsInf(h.bounds[3], 1) {
		t.Fatalf("bounds %v", h.bounds)
	}
	// 50th observation is the top of the 1-10 ms bucket; 75th is half way
	// into 10-100 ms.
	if q := h.quantile(0.5); math.Abs(q-0.01) > 1e-9 {
		t.Errorf("p50 %v", q)
	}
	if q := h.quantile(0.75); math.Abs(q-0.055) > 1e-9 {
		t.Errorf("p75 %v", q)
	}
	base, _ := parseProm(strings.NewReader(strings.ReplaceAll(promText, `le="0.1"} 100`, `le="0.1"} 60`)))
	d := h.sub(histogramOf(base, "codewatch_ingest_duration_seconds"))
	if d.counts[2] != 40 || d.counts[1] != 0 {
		t.Errorf("delta counts %v", d.counts)
	}
	if h.mean() != 0.025 {
		t.Errorf("mean %v", h.mean())
	}
}

func TestParsePgbench(t *testing.T) {
	out := `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: ingest.pgbench
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 22130
number of failed transactions: 0 (0.000%)
latency average = 14.460 ms
initial connection time = 12.345 ms
tps = 2213.050000 (without initial connection time)
`
	r, err := parsePgbench(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.tps != 2213.05 || r.processed != 22130 || r.failed != 0 || r.latencyMS != 14.46 {
		t.Errorf("%+v", r)
	}
	if _, err := parsePgbench("pgbench: error: connection refused"); err == nil {
		t.Error("no tps line accepted")
	}
}

// The script must have no ":name" pgbench would read as a variable besides
// n and c (a timestamp in a literal would be one).
func TestPgbenchScriptVariables(t *testing.T) {
	s := pgbenchScript(pgbenchBody())
	for i := 0; i < len(s); i++ {
		if s[i] != ':' || (i > 0 && s[i-1] == ':') || (i+1 < len(s) && s[i+1] == ':') {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if name := s[i+1 : j]; name != "" && name != "n" && name != "c" {
			t.Errorf("pgbench would read :%s as a variable", name)
		}
	}
	for _, stmt := range []string{"INSERT INTO events", "INSERT INTO access_codes (access_code_id, workspace_id, device_id, connected_account_id)", "FOR UPDATE", "FROM events", "UPDATE access_codes c SET", "COMMIT;"} {
		if !strings.Contains(s, stmt) {
			t.Errorf("script lacks %q", stmt)
		}
	}
}

func TestProcParsers(t *testing.T) {
	st, err := parseProcStat("1234 (code watch) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 8 0 100 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 1 || st.comm != "code watch" || st.utime != 2.5 || st.stime != 0.5 || st.cutime != 0.07 || st.cstime != 0.03 {
		t.Errorf("%+v", st)
	}
	hwm, rss := parseStatusMem(bufio.NewScanner(strings.NewReader("Name:\tcodewatch\nVmHWM:\t   33480 kB\nVmRSS:\t   21000 kB\n")))
	if hwm != 33480 || rss != 21000 {
		t.Errorf("hwm %d rss %d", hwm, rss)
	}
	busy, all, irq := parseMachineCPU("cpu  100 0 50 800 50 10 20 0 0 0")
	if math.Abs(busy-1.8) > 1e-9 || math.Abs(all-10.3) > 1e-9 || math.Abs(irq-0.3) > 1e-9 {
		t.Errorf("busy %v all %v irq %v", busy, all, irq)
	}
}

func TestFmtInt(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", math.NaN(): "–"} {
		if got := fmtInt(in); got != want {
			t.Errorf("fmtInt(%v) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkBuildAndSign(b *testing.B) {
	for i := 0; i < b.N; i++ {
		code, stage := schedule(int64(i), 512)
		msgID, eventID := seamevent.NewMessageID(), seamevent.NewID()
		now := time.Now()
		body, _ := seamevent.Build(eventType(code, stage), seamevent.Options{EventID: eventID,
			AccessCodeID: codeID("0badc0de", 32, code), DeviceID: deviceID("0badc0de", code), OccurredAt: now})
		if _, err := verify.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", msgID, now, body); err != nil {
			b.Fatal(err)
		}
	}
}
