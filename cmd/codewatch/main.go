// Command codewatch receives Seam's access-code webhooks and tells ops staff,
// with evidence, whether each deleted code is really gone from its lock.
//
//	codewatch serve                 run the service
//	codewatch migrate up|down|status
//	codewatch send EVENT_TYPE ...   send a signed test event
//	codewatch replay                recompute every code's state
//	codewatch quarantine retry      re-ingest quarantined deliveries
//	codewatch delete ID...          ask Seam to delete codes
//	codewatch reconcile [ID...]     look codes up in Seam's API now
//	codewatch backfill --since D    store Seam events the webhooks missed
//	codewatch rekey                 re-encrypt stored bodies under the first data key
//	codewatch keys generate [ID]    print a new data key
//	codewatch version               what was built, from which commit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "codewatch:", err)
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
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// usageError is a mistake on the command line: exit 2 and one line that
// says where help is (cmd "" is the top level), never the whole usage.
func usageError(cmd string, err error) error {
	hint := "run 'codewatch help'"
	if cmd != "" {
		hint = "run 'codewatch " + cmd + " -h'"
	}
	return &exitError{2, fmt.Errorf("%w; %s", err, hint)}
}

const usage = `codewatch: is every deleted smart-lock access code really gone from its lock?

usage:
  codewatch serve [flags]                  run the webhook receiver and ops API
  codewatch migrate up|down|status         manage the database schema
  codewatch send EVENT_TYPE --access-code-id ID [--device-id ID] [--url URL] [--secret S]
                                           send a signed Seam test event
  codewatch replay [--batch N]             recompute every code's state from stored events
  codewatch quarantine retry [--reason R]  store quarantined deliveries this version can use
  codewatch delete ID...                   ask Seam to delete access codes (ids on stdin if none)
  codewatch reconcile [ID...]              look codes up in Seam's API now (all unconfirmed if none)
  codewatch backfill --since D | --between T1,T2
                                           store Seam's events that webhooks missed
  codewatch rekey [--batch N]              re-encrypt stored bodies under the first data key
  codewatch keys generate [ID] [--signing] print a new data key for CODEWATCH_DATA_KEYS
                                           (--signing: a signing key for CODEWATCH_SIGNING_KEY)
  codewatch export [--since T] [--until T] [--format csv|jsonl]
                                           write one row per deleted code (the deletions export)
  codewatch proof verify FILE [--public-key K]
                                           check a signed deletion record, offline
  codewatch version                        print the version, commit and Go version
  codewatch help [COMMAND]                 print this, or a command's flags

Run "codewatch COMMAND -h" for a command's flags.`

type command func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

func commands() map[string]command {
	return map[string]command{
		"serve":      serve,
		"migrate":    migrate,
		"send":       send,
		"replay":     replay,
		"quarantine": quarantine,
		"delete":     deleteCodes,
		"reconcile":  reconcile,
		"backfill":   backfill,
		"rekey":      rekey,
		"keys":       keys,
		"proof":      proofCmd,
		"export":     exportCmd,
		"version":    version,
	}
}

// run is the whole program; main only calls it, tests call it too. Help
// (to stdout) is a success; main prints a returned error as one line.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "-help", "--help":
		if cmd == "help" && len(rest) > 0 {
			// `codewatch help serve` is `codewatch serve -h`.
			c, ok := commands()[rest[0]]
			if !ok {
				return usageError("", fmt.Errorf("help: unknown command %q", rest[0]))
			}
			return c(ctx, []string{"-h"}, getenv, stdout, stderr)
		}
		fmt.Fprintln(stdout, usage)
		return nil
	case "--version", "-version":
		cmd = "version"
	}
	if c, ok := commands()[cmd]; ok {
		return c(ctx, rest, getenv, stdout, stderr)
	}
	if strings.HasPrefix(cmd, "-") {
		return usageError("", fmt.Errorf("unknown flag %s (flags follow the command)", cmd))
	}
	return usageError("", fmt.Errorf("unknown command %q", cmd))
}

// newFlagSet returns a flag set that prints nothing itself: parseFlags
// prints help to stdout and turns a mistake into one line.
func newFlagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet("codewatch "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args into fs. Flags and arguments may come in any
// order (`migrate up --data-dir d`); the arguments are returned. -h prints
// head and the flags to stdout and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, cmd string, args []string, stdout io.Writer, head string) ([]string, error) {
	flags, positional := splitArgs(fs, args)
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, head)
			n := 0
			fs.VisitAll(func(*flag.Flag) { n++ })
			if n > 0 {
				fmt.Fprintln(stdout, "\nflags:")
				fs.SetOutput(stdout)
				fs.PrintDefaults()
			}
			return nil, err
		}
		return nil, usageError(cmd, fmt.Errorf("%s: %w", cmd, err))
	}
	return append(positional, fs.Args()...), nil
}

// parseNoArgs is parseFlags for a command that takes flags only: an
// argument is a mistake.
func parseNoArgs(fs *flag.FlagSet, cmd string, args []string, stdout io.Writer, head string) error {
	rest, err := parseFlags(fs, cmd, args, stdout, head)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError(cmd, fmt.Errorf("%s: unexpected argument %q", cmd, rest[0]))
	}
	return nil
}

// parseVerb is parseFlags for a command whose first argument is one of
// verbs (`migrate up`, `keys generate ID`), followed by at most maxArgs
// arguments of the verb's own. It returns the verb and those arguments; a
// missing or unknown verb, or one argument too many, is a usage error.
func parseVerb(fs *flag.FlagSet, cmd string, args []string, stdout io.Writer, head string, verbs []string, maxArgs int) (string, []string, error) {
	rest, err := parseFlags(fs, cmd, args, stdout, head)
	if err != nil {
		return "", nil, err
	}
	switch {
	case len(rest) == 0:
		need := "one of " + strings.Join(verbs, ", ")
		if len(verbs) == 1 {
			need = "the command " + verbs[0]
		}
		return "", nil, usageError(cmd, fmt.Errorf("%s needs %s", cmd, need))
	case !slices.Contains(verbs, rest[0]):
		choice := verbs[len(verbs)-1]
		if len(verbs) > 1 {
			choice = strings.Join(verbs[:len(verbs)-1], ", ") + " or " + choice
		}
		return "", nil, usageError(cmd, fmt.Errorf("unknown %s command %q (%s)", cmd, rest[0], choice))
	case len(rest) > 1+maxArgs:
		// As parseNoArgs says it; a verb that takes arguments is named too.
		where := cmd
		if maxArgs > 0 {
			where += " " + rest[0]
		}
		return "", nil, usageError(cmd, fmt.Errorf("%s: unexpected argument %q", where, rest[1+maxArgs]))
	}
	return rest[0], rest[1:], nil
}

// splitArgs separates flags (with their values) from other arguments, since
// Go's flag package stops at the first argument that is not a flag.
func splitArgs(fs *flag.FlagSet, args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(positional, args[i+1:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value takes the next argument; unknown flags
		// and -h take none (Parse reports them).
		f := fs.Lookup(name)
		if f == nil || isBoolFlag(f) {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, positional
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
