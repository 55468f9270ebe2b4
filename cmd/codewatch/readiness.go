package main

import (
	"context"
	"errors"
	"sync/atomic"
)

// readiness is what the listeners say about start-up and shutdown. Until
// start-up has finished, webhooks and /v1 answer 503 with the reason
// (available); /readyz fails then too, once shutting down, and while the
// schema is not ready (ready).
type readiness struct {
	started, shuttingDown atomic.Bool
	notReady              atomic.Pointer[string]
	// schema reports whether the database's schema is the one this
	// version needs.
	schema func(context.Context) error
}

func newReadiness(schema func(context.Context) error) *readiness {
	r := &readiness{schema: schema}
	r.waiting("starting: connecting to the database")
	return r
}

// waiting says why start-up has not finished.
func (r *readiness) waiting(why string) { r.notReady.Store(&why) }

// start says that everything has started.
func (r *readiness) start() { r.started.Store(true) }

// shutDown turns readiness false for good.
func (r *readiness) shutDown() { r.shuttingDown.Store(true) }

// hasStarted reports whether start-up finished.
func (r *readiness) hasStarted() bool { return r.started.Load() }

// available is nil once start-up has finished, else why not.
func (r *readiness) available() error {
	if r.started.Load() {
		return nil
	}
	return errors.New(*r.notReady.Load())
}

// ready is /readyz's answer.
func (r *readiness) ready(ctx context.Context) error {
	if r.shuttingDown.Load() {
		return errors.New("shutting down")
	}
	if err := r.available(); err != nil {
		return err
	}
	return r.schema(ctx)
}
