// Command codewatch receives Seam's access-code webhooks and tells ops staff,
// with evidence, whether each deleted code is really gone from its lock.
//
//	codewatch serve                 run the service
//	codewatch migrate up|down|status
//	codewatch send EVENT_TYPE ...   send a signed test event
//	codewatch replay                recompute every code's state
//	codewatch quarantine retry      re-ingest quarantined deliveries
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "codewatch:", err)
		}
		stop()
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

const usage = `codewatch: is every deleted smart-lock access code really gone from its lock?

usage:
  codewatch serve [flags]                  run the webhook receiver and ops API
  codewatch migrate up|down|status         manage the database schema
  codewatch send EVENT_TYPE --access-code-id ID [--device-id ID] [--url URL] [--secret S]
                                           send a signed Seam test event
  codewatch replay [--batch N]             recompute every code's state from stored events
  codewatch quarantine retry [--reason R]  store quarantined deliveries this version can use

Run "codewatch COMMAND -h" for a command's flags.`

// run is the whole program; main only calls it, tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &exitError{2, errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "send":
		return send(ctx, rest, getenv, stdout, stderr)
	case "replay":
		return replay(ctx, rest, getenv, stdout, stderr)
	case "quarantine":
		return quarantine(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return &exitError{2, fmt.Errorf("unknown command %q", cmd)}
}
