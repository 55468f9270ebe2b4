package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/seamevent"
)

// SIGTERM in the middle of a load: every event codewatch acknowledged with a
// 2xx is in the database, the process exits 0 within the shutdown timeout,
// and readiness is never reported after the signal.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	db := pgtest.NewURL(t)
	env := newServeEnv(t, db)
	const shutdownTimeout = 10 * time.Second
	env["CODEWATCH_SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	// A drain window: /readyz must answer 503 while the listeners still
	// serve, as a load balancer needs to see.
	env["CODEWATCH_SHUTDOWN_DRAIN"] = "1s"
	s := startServer(t, "serve", env)

	const senders = 16
	codes := make([]string, 40) // shared by senders: row-lock contention
	for i := range codes {
		codes[i] = seamevent.NewID()
	}
	types := []string{"access_code.created", "access_code.set_on_device", "access_code.deleted",
		"access_code.removed_from_device", "access_code.delay_in_removing_from_device", "lock.unlocked"}

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var (
		mu          sync.Mutex
		acked       []string // message ids answered 2xx
		ackedAfter  int      // of which answered after SIGTERM was sent
		failures    int
		statusCodes = map[int]int{}
		termAt      atomic.Int64 // unix nanos of SIGTERM, 0 before
	)
	loadCtx, stopLoad := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer stopLoad()
	var wg sync.WaitGroup
	for w := 0; w < senders; w++ {
		wg.Go(func() {
			sender := &seamevent.Sender{URL: s.webhookURL(), Secret: s.Secret, Client: client}
			for loadCtx.Err() == nil {
				body, err := seamevent.Build(types[rand.IntN(len(types))], seamevent.Options{AccessCodeID: codes[rand.IntN(len(codes))]})
				if err != nil {
					t.Error(err)
					return
				}
				msg := seamevent.NewMessageID()
				rep, err := sender.Send(context.Background(), msg, body)
				mu.Lock()
				switch {
				case err == nil && rep.Status >= 200 && rep.Status < 300:
					acked = append(acked, msg)
					if termAt.Load() != 0 {
						ackedAfter++
					}
				case err == nil:
					statusCodes[rep.Status]++
				default:
					failures++
				}
				mu.Unlock()
				if err != nil || rep.Status >= 300 {
					time.Sleep(5 * time.Millisecond) // refused: do not spin
				}
			}
		})
	}

	// Readiness, probed throughout.
	type probe struct {
		at     time.Time
		status int // 0: no answer
	}
	var probes []probe
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for loadCtx.Err() == nil {
			code, _ := s.readyz()
			probes = append(probes, probe{time.Now(), code})
			time.Sleep(2 * time.Millisecond)
		}
	}()

	time.Sleep(1200 * time.Millisecond)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	sigAt := time.Now()
	termAt.Store(sigAt.UnixNano())
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := s.wait(shutdownTimeout + 5*time.Second)
	exitAfter := s.exitedAt.Sub(sigAt)
	wg.Wait()
	<-probeDone

	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if exitAfter > shutdownTimeout+2*time.Second {
		t.Errorf("exited %s after SIGTERM, more than CODEWATCH_SHUTDOWN_TIMEOUT %s + margin", exitAfter, shutdownTimeout)
	}
	if before < 50 {
		t.Fatalf("only %d events acknowledged before SIGTERM: the load did not run", before)
	}

	// Every acknowledged event is stored.
	conn := dbConn(t, db)
	var stored, total int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE message_id = ANY($1)`, acked).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if stored != len(acked) {
		var missing []string
		rows, _ := conn.Query(context.Background(), `SELECT m FROM unnest($1::text[]) m
			WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m)`, acked)
		for rows.Next() {
			var m string
			_ = rows.Scan(&m)
			missing = append(missing, m)
		}
		rows.Close()
		t.Errorf("%d events acknowledged, %d of them stored; missing: %v", len(acked), stored, missing)
	}
	t.Logf("shutdown: %d events acknowledged (%d before SIGTERM, %d answered after it), %d stored in all, "+
		"%d refused/failed requests, non-2xx %v; exit %d after %s",
		len(acked), before, ackedAfter, total, failures, statusCodes, code, exitAfter.Round(time.Millisecond))

	// Readiness: up before the signal; after it (allowing for delivery of
	// the signal) never 200 again.
	var ok200Before, notReadyAfter, answered503 int
	for _, p := range probes {
		switch {
		case p.at.Before(sigAt) && p.status == http.StatusOK:
			ok200Before++
		case p.at.After(sigAt.Add(500*time.Millisecond)) && p.status == http.StatusOK:
			t.Errorf("/readyz answered 200 %s after SIGTERM", p.at.Sub(sigAt))
		case p.at.After(sigAt) && p.status != http.StatusOK:
			notReadyAfter++
			if p.status == http.StatusServiceUnavailable {
				answered503++
			}
		}
	}
	if ok200Before == 0 {
		t.Error("/readyz never answered 200 before SIGTERM")
	}
	if notReadyAfter == 0 || answered503 == 0 {
		t.Errorf("/readyz after SIGTERM: %d probes not ready, %d of them 503; want 503s during the drain", notReadyAfter, answered503)
	}
	t.Logf("readiness after SIGTERM: %d probes not ready, of which %d answered 503 (the rest: connection refused)", notReadyAfter, answered503)

	// After exit both listeners refuse connections.
	for _, addr := range []string{env["CODEWATCH_LISTEN"], env["CODEWATCH_OPS_LISTEN"]} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after exit", addr)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Logf("dial %s after exit: %v", addr, err)
		}
	}
	if len(s.logsWithMsg("shutdown incomplete")) != 0 {
		t.Errorf("shutdown did not complete within the timeout:\n%s", tail(s.logs(), 3000))
	}
	if len(s.logsWithMsg("stopped")) != 1 {
		t.Error("no \"stopped\" log line")
	}
}
