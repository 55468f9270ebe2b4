package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

// The ceiling script stays here, not in postgres/: pgbench runs it, in its
// own script language, as a copy of the statements the service sends (the
// code row's columns are the store's own: postgres.CodeColumns).

// pgbenchScript is one event's ingest transaction as postgres/ingest.go and
// postgres/store.go run it for a batch of one: the same statements, with
// each array parameter a one-element array. Ids are fresh random numbers, so
// every transaction stores a new event of a new code. The raw body is a
// real event body of the size the service stores (hex, because pgbench
// would read ":12" inside a timestamp literal as a variable).
func pgbenchScript(raw []byte) string {
	rawHex := hex.EncodeToString(raw)
	return `\set n random(1, 9000000000000000)
\set c random(1, 9000000000000000)
BEGIN;
INSERT INTO events (message_id, event_id, event_type, workspace_id,
		occurred_at, created_at, access_code_id, device_id, connected_account_id,
		details, raw)
	SELECT m, e, t, w, o, c, a, d, ca, det::jsonb, r
	FROM unnest(ARRAY['msg_' || :n::text]::text[], ARRAY['evt-' || :n::text]::text[],
		ARRAY['access_code.deleted']::text[], ARRAY['680d7c60-0a92-4e78-85bd-cb45155576b9']::text[],
		ARRAY[now()]::timestamptz[], ARRAY[now()]::timestamptz[], ARRAY['code-' || :c::text]::text[],
		ARRAY['b2c5d123-c7da-44be-ac72-4ad4ca56dbd8']::text[], ARRAY['9792ea0f-b48d-4fff-9d10-bb08bc1ca16a']::text[],
		ARRAY[NULL]::text[], ARRAY[decode('` + rawHex + `', 'hex')]::bytea[])
		AS u(m, e, t, w, o, c, a, d, ca, det, r)
	ON CONFLICT DO NOTHING
	RETURNING message_id;
INSERT INTO access_codes (access_code_id, workspace_id, device_id, connected_account_id)
	SELECT id, ws, dev, acct FROM unnest(ARRAY['code-' || :c::text]::text[],
		ARRAY['680d7c60-0a92-4e78-85bd-cb45155576b9']::text[], ARRAY['b2c5d123-c7da-44be-ac72-4ad4ca56dbd8']::text[],
		ARRAY['9792ea0f-b48d-4fff-9d10-bb08bc1ca16a']::text[]) AS t(id, ws, dev, acct) ORDER BY id
	ON CONFLICT (access_code_id) DO NOTHING;
SELECT ` + postgres.CodeColumns + ` FROM access_codes
	WHERE access_code_id = ANY(ARRAY['code-' || :c::text]) ORDER BY access_code_id FOR UPDATE;
SELECT access_code_id, event_id, event_type,
		COALESCE(occurred_at, created_at, received_at),
		COALESCE(workspace_id, ''), COALESCE(device_id, ''),
		COALESCE(connected_account_id, ''), details
	FROM events
	WHERE access_code_id = ANY(ARRAY['code-' || :c::text]) AND event_type LIKE 'access_code.%';
UPDATE access_codes c SET
		workspace_id = u.ws, device_id = u.dev, connected_account_id = u.acct,
		deletion_state = u.state, on_device = u.on_device,
		needs_troubleshooting = u.needs, troubleshooting_reason = u.reason,
		troubleshooting_details = u.details::jsonb, trouble_key = u.key,
		trouble_since = u.since, deletion_event_id = u.del_id,
		created_at = u.created, set_on_device_at = u.set, deleted_at = u.deleted,
		removed_from_device_at = u.removed, last_event_at = u.last,
		terminal_at = u.terminal, last_alert_at = u.last_alert, updated_at = now()
	FROM unnest(ARRAY['code-' || :c::text]::text[], ARRAY['680d7c60-0a92-4e78-85bd-cb45155576b9']::text[],
		ARRAY['b2c5d123-c7da-44be-ac72-4ad4ca56dbd8']::text[], ARRAY['9792ea0f-b48d-4fff-9d10-bb08bc1ca16a']::text[],
		ARRAY['awaiting_removal']::text[], ARRAY[true]::bool[], ARRAY[false]::bool[], ARRAY[NULL]::text[],
		ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::timestamptz[], ARRAY['evt-' || :n::text]::text[],
		ARRAY[NULL]::timestamptz[], ARRAY[NULL]::timestamptz[], ARRAY[now()]::timestamptz[], ARRAY[NULL]::timestamptz[],
		ARRAY[now()]::timestamptz[], ARRAY[NULL]::timestamptz[], ARRAY[NULL]::timestamptz[])
		AS u(id, ws, dev, acct, state, on_device, needs, reason, details, key, since,
			del_id, created, set, deleted, removed, last, terminal, last_alert)
	WHERE c.access_code_id = u.id;
COMMIT;
`
}

// pgbenchBody is a realistic stored body: a deletion event as Seam sends it.
func pgbenchBody() []byte {
	b, _ := seamevent.Build("access_code.deleted", seamevent.Options{AccessCodeID: seamevent.NewID()})
	return b
}

// pgbenchPath finds pgbench beside the server localpg uses, else on PATH.
func pgbenchPath() (string, error) {
	if dir, err := localpg.BinDir(); err == nil {
		p := filepath.Join(dir, "pgbench")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	return "", errors.New("pgbench not found (looked beside postgres in /usr/lib/postgresql/*/bin and on PATH)")
}

// pgbenchResult is what a pgbench run printed.
type pgbenchResult struct {
	clients   int
	tps       float64
	latencyMS float64
	processed int64
	failed    int64
	cpu       float64 // pgbench's own CPU seconds
	output    string
}

var (
	reTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	reLatency   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	reFailed    = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// parsePgbench reads pgbench's summary.
func parsePgbench(out string) (pgbenchResult, error) {
	var r pgbenchResult
	m := reTPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no tps line in pgbench output")
	}
	r.tps, _ = strconv.ParseFloat(m[1], 64)
	if m := reLatency.FindStringSubmatch(out); m != nil {
		r.latencyMS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reProcessed.FindStringSubmatch(out); m != nil {
		r.processed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reFailed.FindStringSubmatch(out); m != nil {
		r.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// runPgbench runs script at clients connections for d against db.
func runPgbench(ctx context.Context, bin, script string, port int, db string, clients int, d time.Duration) (pgbenchResult, error) {
	threads := 2
	if clients < threads {
		threads = clients
	}
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	ctx, cancel := context.WithTimeout(ctx, d+90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(secs), "-M", "prepared", "-f", script,
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", db)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	res, perr := parsePgbench(out.String())
	res.clients = clients
	res.output = out.String()
	if cmd.ProcessState != nil {
		res.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if err != nil {
		return res, fmt.Errorf("pgbench -c %d: %v: %s", clients, err, tail(out.String(), 15))
	}
	if perr != nil {
		return res, fmt.Errorf("pgbench -c %d: %v: %s", clients, perr, tail(out.String(), 15))
	}
	return res, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runPgbenchLevels runs pgbench for warmup+d at each level: pgbench has no
// warm-up of its own, and its -T clock includes connecting the clients; the
// tps it reports excludes the connection time.
func runPgbenchLevels(ctx context.Context, w io.Writer, tmp string, srv *localpg.Server, dbs *dbSampler, pmPID int, levels []*level, warmup, d time.Duration, statements bool) error {
	bin, err := pgbenchPath()
	if err != nil {
		return err
	}
	script := filepath.Join(tmp, "ingest.pgbench")
	if err := os.WriteFile(script, []byte(pgbenchScript(pgbenchBody())), 0o644); err != nil {
		return err
	}
	d += warmup
	fmt.Fprintf(w, "\n## pgbench: one event's ingest transaction per pgbench transaction (%s, -M prepared -j 2 -T %s, database codewatch)\n",
		bin, d.Round(time.Second))
	var firstErr error
	for _, lv := range levels {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		c0 := sampleCPU(0, pmPID)
		db0 := dbs.sample(ctx)
		if statements {
			dbs.resetStatements(ctx)
		}
		r, err := runPgbench(ctx, bin, script, srv.Port, "codewatch", lv.conc, d)
		db1 := dbs.sample(ctx)
		var top []string
		if statements {
			top = dbs.topStatements(ctx, 8)
		}
		// Backends of the run exit after pgbench; let the postmaster reap
		// them so their CPU is counted.
		time.Sleep(300 * time.Millisecond)
		c1 := sampleCPU(0, pmPID)
		if err != nil {
			lv.pgbError = err.Error()
			fmt.Fprintf(w, "  -c %-4d error: %v\n", lv.conc, err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		lv.pgb = &r
		lv.pgbCPU = c1.sub(c0).postgres
		lv.pgbWall = c1.at.Sub(c0.at)
		ratio := lv.st.eventsPerSec / r.tps
		dd := db1.sub(db0)
		fmt.Fprintf(w, "  -c %-4d tps %.0f  latency avg %.2f ms  %d transactions, %d failed; postgres %.2f cores (%.0f µs/tx), pgbench %.2f cores; %.0f WAL bytes/tx, ≈%.1f tx/WAL sync; service/pgbench %.2f\n",
			lv.conc, r.tps, r.latencyMS, r.processed, r.failed, cores(lv.pgbCPU, lv.pgbWall), lv.pgbCPU/float64(max(r.processed, 1))*1e6,
			r.cpu/d.Seconds(), dd.walBytes/float64(max(r.processed, 1)), float64(r.processed)/max(dd.walSyncs, 1), ratio)
		printStatements(w, top)
		if r.failed > 0 && firstErr == nil {
			firstErr = fmt.Errorf("-c %d: %d failed transactions", lv.conc, r.failed)
		}
	}
	return firstErr
}
