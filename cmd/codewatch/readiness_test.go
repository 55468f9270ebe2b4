package main

import (
	"context"
	"errors"
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
