package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/lifecycle"
)

func (e *consoleEnv) export(t *testing.T, query string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/exports/deletions"+query, nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// The deletions export (issue 22): one row per deleted code with its names,
// every troubleshooting reason and who acknowledged; CSV per RFC 4180 with
// formula-looking cells neutralised, or JSON lines; since/until select the
// period.
func TestExportDeletions(t *testing.T) {
	ctx := context.Background()
	e := newConsoleEnv(t, console.Console{})
	failed := e.troubled("dev-export-1")
	if _, _, err := e.store.Acknowledge(ctx, failed, "alice", "checked on site", ""); err != nil {
		t.Fatal(err)
	}
	removed := "removed-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	e.send(lifecycle.TypeSetOnDevice, removed, "dev-export-2", 2*time.Hour)
	e.send(lifecycle.TypeDeleted, removed, "dev-export-2", 90*time.Minute)
	e.send(lifecycle.TypeRemovedFromDevice, removed, "dev-export-2", 80*time.Minute)
	e.send(lifecycle.TypeSetOnDevice, "live-code", "dev-export-2", time.Hour) // not deleted: not exported
	formula, door, place := `=HYPERLINK("http://evil","x")`, "+Front, \"main\" door", "-12 Elm St\r\nBack"
	if err := e.store.SetCodeName(ctx, failed, &formula, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetDeviceNames(ctx, "dev-export-1", lifecycle.LockNames{DeviceName: &door, LocationName: &place}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}

	st, h, body := e.export(t, "")
	if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s\n%s", st, h.Get("Content-Type"), body)
	}
	if !bytes.Contains(body, []byte("\r\n")) {
		t.Errorf("CSV lines do not end in CRLF (RFC 4180)")
	}
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("not RFC 4180 CSV: %v\n%s", err, body)
	}
	if strings.Join(recs[0], ",") != strings.Join(handlers.ExportColumns, ",") {
		t.Fatalf("header %v", recs[0])
	}
	if len(recs) != 3 {
		t.Fatalf("%d rows, want the 2 deleted codes:\n%s", len(recs)-1, body)
	}
	byID := map[string]map[string]string{}
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, col := range handlers.ExportColumns {
			m[col] = r[i]
		}
		byID[r[0]] = m
	}
	f := byID[failed]
	if f["access_code_name"] != "'"+formula || f["device_name"] != "'"+door || !strings.HasPrefix(f["location_name"], "'-12 Elm St") {
		t.Errorf("formula-looking cells not neutralised: %q %q %q", f["access_code_name"], f["device_name"], f["location_name"])
	}
	if f["deletion_state"] != "failed" || !strings.Contains(f["troubleshooting_reasons"], lifecycle.ReasonFailed) ||
		f["acknowledged_by"] != "alice" || f["deleted_at"] == "" || f["confirmed_at"] != "" {
		t.Errorf("failed code's row: %v", f)
	}
	r := byID[removed]
	if r["deletion_state"] != "removed" || r["confirmed_by"] != "webhook" || r["confirmed_at"] == "" || r["device_id"] != "dev-export-2" {
		t.Errorf("removed code's row: %v", r)
	}

	st, h, body = e.export(t, "?format=jsonl")
	if st != http.StatusOK || h.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("jsonl: %d %s", st, h.Get("Content-Type"))
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	n := 0
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		for _, col := range handlers.ExportColumns {
			if _, ok := row[col]; !ok {
				t.Errorf("line %d lacks %s", n+1, col)
			}
		}
		if row["access_code_id"] == failed && row["access_code_name"] != formula {
			t.Errorf("JSON keeps names as they are: %v", row["access_code_name"])
		}
		if _, ok := row["troubleshooting_reasons"].([]any); !ok {
			t.Errorf("troubleshooting_reasons is not a list: %v", row["troubleshooting_reasons"])
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d JSON lines, want 2", n)
	}

	// The period: deletions at or after since, before until.
	cut := e.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if _, _, body := e.export(t, "?since="+cut); !bytes.Contains(body, []byte(failed)) || bytes.Contains(body, []byte(removed)) {
		t.Errorf("since=%s:\n%s", cut, body)
	}
	if _, _, body := e.export(t, "?until="+cut+"&format=jsonl"); bytes.Contains(body, []byte(failed)) || !bytes.Contains(body, []byte(removed)) {
		t.Errorf("until=%s:\n%s", cut, body)
	}
	for _, q := range []string{"?format=xlsx", "?since=yesterday", "?until=1", "?what=1"} {
		if st, _, body := e.export(t, q); st != http.StatusBadRequest {
			t.Errorf("%s: %d %s", q, st, body)
		}
	}
}

func TestNeutralizeCell(t *testing.T) {
	for in, want := range map[string]string{"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)",
		"\tx": "'\tx", "\rx": "'\rx", "Front door": "Front door", "": "", "a=b": "a=b"} {
		if got := handlers.NeutralizeCell(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// BenchmarkExportDeletions streams CODEWATCH_EXPORT_BENCH_ROWS deleted codes
// (default a million) as CSV and reports the rows per second and the
// largest heap seen while streaming: bounded by a chunk, not the rows.
//
//	go test ./handlers/ -run '^$' -bench BenchmarkExportDeletions -benchtime 1x
func BenchmarkExportDeletions(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("CODEWATCH_EXPORT_BENCH_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	e := newConsoleEnv(b, console.Console{})
	ctx := context.Background()
	// The benchmark's own fixture: deleted codes straight into the table.
	if _, err := e.pool.Exec(ctx, `INSERT INTO access_codes (access_code_id, device_id, workspace_id, deletion_state,
			deleted_at, access_code_name, names_checked_at)
		SELECT 'bench-' || g, 'dev-' || (g % 5000), 'ws', 'awaiting_removal',
			now() - make_interval(secs => g), 'Guest ' || g, now()
		FROM generate_series(1, $1) g`, rows); err != nil {
		b.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `ANALYZE access_codes`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var peak uint64
		done := make(chan struct{})
		go func() {
			var m runtime.MemStats
			for {
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
					runtime.ReadMemStats(&m)
					peak = max(peak, m.HeapInuse)
				}
			}
		}()
		cw := &countingWriter{}
		start := time.Now()
		err := handlers.WriteExport(ctx, cw, e.store, lifecycle.ExportFilter{}, handlers.ExportCSV, nil, nil, false)
		close(done)
		if err != nil {
			b.Fatal(err)
		}
		if cw.lines != rows+1 {
			b.Fatalf("%d lines, want %d", cw.lines, rows+1)
		}
		took := time.Since(start)
		b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.Logf("%d rows, %s of CSV in %v; peak heap in use %.1f MiB", rows, fmt.Sprint(cw.n), took.Round(time.Millisecond), float64(peak)/(1<<20))
	}
}

type countingWriter struct {
	n     int64
	lines int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}
