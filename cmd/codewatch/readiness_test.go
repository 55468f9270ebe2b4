package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestReadiness(t *testing.T) {
	ctx := context.Background()
	schema := errors.New("schema: 00012 pending")
	var schemaErr error
	r := newReadiness(func(context.Context) error { return schemaErr })
	check := func(when string, available, ready string) {
		t.Helper()
		if got := errString(r.available()); got != available {
			t.Errorf("%s: available %q, want %q", when, got, available)
		}
		if got := errString(r.ready(ctx)); got != ready {
			t.Errorf("%s: ready %q, want %q", when, got, ready)
		}
	}
	check("new", "starting: connecting to the database", "starting: connecting to the database")
	r.waiting("starting: connection refused")
	check("waiting", "starting: connection refused", "starting: connection refused")
	if r.hasStarted() {
		t.Error("started before start")
	}
	r.start()
	check("started", "", "")
	schemaErr = schema
	check("started, schema behind", "", schema.Error())
	schemaErr = nil
	r.shutDown()
	check("shutting down", "", "shutting down")
	if !r.hasStarted() {
		t.Error("not started after start")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// River's client pings the database as it starts: a database that stops
// between the migrations and that ping is retried like one unreachable at
// start (the fault suite's Postgres stop ended the process here), and
// readiness says why meanwhile.
func TestRetryStartRetriesUntilItStarts(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	calls, why := 0, ""
	err := retryStart(context.Background(), "background jobs", func() error {
		calls++
		if calls < 3 {
			return errors.New("error making initial connection to database: FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")
		}
		return nil
	}, logger, func(s string) { why = s })
	if err != nil || calls != 3 {
		t.Fatalf("retryStart: %v after %d calls", err, calls)
	}
	if !strings.Contains(why, "57P01") || strings.Count(logs.String(), "background jobs did not start; retrying") != 2 {
		t.Errorf("readiness %q, logs:\n%s", why, logs.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retryStart(ctx, "background jobs", func() error { return errors.New("down") }, logger, func(string) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled start: %v", err)
	}
}
