package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/seamevent"
)

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate")
	env := newCommandEnv(fs, getenv, stderr, 0)
	verb, _, err := parseVerb(fs, "migrate", args, stdout,
		"usage: codewatch migrate up|down|status [flags]\n\n  up      apply every pending migration\n  down    roll back the newest migration\n  status  list migrations and whether each is applied",
		[]string{"up", "down", "status"}, 0)
	if err != nil {
		return err
	}
	pool, done, err := env.openPool(ctx)
	if err != nil {
		return err
	}
	defer done()
	// Warnings only: a migration's retries after its lock_timeout, one line each.
	m, err := migrations.New(pool, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer m.Close()
	switch verb {
	case "up":
		res, err := m.Up(ctx)
		for _, r := range res {
			fmt.Fprintf(stdout, "applied %s (%s)\n", r.Name, r.Duration.Round(time.Millisecond))
		}
		if err == nil && len(res) == 0 {
			fmt.Fprintln(stdout, "no pending migrations")
		}
		return err
	case "down":
		r, err := m.Down(ctx)
		if errors.Is(err, migrations.ErrNothingToRollBack) {
			return errors.New("migrate down: no migration is applied; nothing to roll back")
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %s (%s)\n", r.Name, r.Duration.Round(time.Millisecond))
		return nil
	default: // status, checked above
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MIGRATION\tSTATE\tAPPLIED AT")
		for _, s := range st {
			state, at := "pending", "-"
			if s.Applied {
				state = "applied"
			}
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, state, at)
		}
		return tw.Flush()
	}
}

func send(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("send")
	var o seamevent.Options
	fs.StringVar(&o.AccessCodeID, "access-code-id", "", "the access code (required for access_code.* events)")
	fs.StringVar(&o.DeviceID, "device-id", "", "the device (default: one derived from --access-code-id, the same on every send for that code)")
	fs.StringVar(&o.WorkspaceID, "workspace-id", "", "the workspace (default: an example workspace)")
	fs.StringVar(&o.EventID, "event-id", "", "event_id (default: a new UUID)")
	occurred := fs.String("occurred-at", "", "occurred_at, RFC 3339 (default: now)")
	msgID := fs.String("message-id", "", "svix-id (default: a new msg_ id; a retry reuses it with the same --event-id and --occurred-at)")
	url := config.EnvString(fs, "url", "CODEWATCH_SEND_URL", "", "webhook URL ($CODEWATCH_SEND_URL; default: the running development service, or http://127.0.0.1:8080/webhooks/seam)", getenv)
	secret := config.EnvString(fs, "secret", "SEAM_WEBHOOK_SECRET", "", "whsec_ secret to sign with ($SEAM_WEBHOOK_SECRET; default: the development secret)", getenv)
	dataDir := config.EnvString(fs, "data-dir", "CODEWATCH_DATA_DIR", ".codewatch", "development data directory", getenv)
	standard := fs.Bool("webhook-headers", false, "use the webhook-* header names instead of svix-*")
	force := fs.Bool("force", false, "send an EVENT_TYPE Seam does not have")
	rest, err := parseFlags(fs, "send", args, stdout,
		"usage: codewatch send EVENT_TYPE --access-code-id ID [--device-id ID] [--url URL] [--secret S]\n\nBuilds a realistic Seam event, signs it as Seam does, posts it and prints the reply.\nEVENT_TYPE is one of Seam's event types, e.g. access_code.deleted,\naccess_code.removed_from_device; another is refused unless --force.")
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return usageError("send", errors.New("send needs an EVENT_TYPE, e.g. access_code.deleted"))
	case len(rest) > 1:
		return usageError("send", fmt.Errorf("send: unexpected argument %q (one EVENT_TYPE)", rest[1]))
	}
	eventType := rest[0]
	// A typo would be signed, stored and folded as an event Seam never sends.
	if !seamevent.KnownEventType(eventType) && !*force {
		return &exitError{2, fmt.Errorf("send: Seam has no event type %q; did you mean %s? (--force sends it anyway)",
			eventType, seamevent.ClosestEventType(eventType))}
	}
	if lifecycle.IsAccessCodeEvent(eventType) && o.AccessCodeID == "" {
		return usageError("send", errors.New("--access-code-id is required for access_code.* events"))
	}
	if o.DeviceID == "" && o.AccessCodeID != "" {
		// One example device would move every code onto it; a code stays on
		// its own lock.
		o.DeviceID = seamevent.DeviceIDFor(o.AccessCodeID)
	}
	if *occurred != "" {
		t, err := time.Parse(time.RFC3339Nano, *occurred)
		if err != nil {
			return &exitError{2, fmt.Errorf("--occurred-at: %q is not RFC 3339", *occurred)}
		}
		o.OccurredAt = t
	}
	if *url == "" || *secret == "" {
		if st, err := readDevState(*dataDir); err == nil {
			if *url == "" {
				*url = st.WebhookURL
			}
			if *secret == "" {
				*secret = st.WebhookSecret
			}
		}
	}
	if *url == "" {
		*url = "http://127.0.0.1:8080/webhooks/seam"
	}
	if *secret == "" {
		return &exitError{2, errors.New("--secret (or SEAM_WEBHOOK_SECRET) is required: no development service found under " + *dataDir)}
	}
	body, err := seamevent.Build(eventType, o)
	if err != nil {
		return &exitError{2, err}
	}
	if *msgID == "" {
		*msgID = seamevent.NewMessageID()
	}
	s := &seamevent.Sender{URL: *url, Secret: *secret, Standard: *standard}
	rep, err := s.Send(ctx, *msgID, body)
	if err != nil {
		return fmt.Errorf("post %s: %w", *url, err)
	}
	fmt.Fprintf(stdout, "POST %s\nsvix-id: %s\n%s\n\n%d %s\n", *url, *msgID, body, rep.Status, strings.TrimSpace(string(rep.Body)))
	if rep.Status < 200 || rep.Status > 299 {
		return &exitError{1, fmt.Errorf("the service answered %d", rep.Status)}
	}
	return nil
}

func replay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay")
	env := newCommandEnv(fs, getenv, stderr, withDataKeys|withRemovalTimeout)
	batch := fs.Int("batch", 500, "codes per transaction")
	err := parseNoArgs(fs, "replay", args, stdout,
		"usage: codewatch replay [flags]\n\nRecomputes every access code's state from its stored events, in batches,\nsafe while the service runs (after an upgrade that changes the rules).")
	if err != nil {
		return err
	}
	// Replay recomputes from the parsed columns and reads no body: keys
	// are used when given, not required.
	db, err := env.open(ctx, keysOptional)
	if err != nil {
		return err
	}
	defer db.close()
	start := time.Now()
	p, err := db.store.Replay(ctx, *batch, func(p postgres.ReplayProgress) {
		pct := 100.0
		if p.Total > 0 {
			pct = 100 * float64(p.Done) / float64(p.Total)
		}
		fmt.Fprintf(stdout, "replay: %d/%d codes (%.0f%%), %d changed, %s\n", p.Done, p.Total, pct, p.Changed, time.Since(start).Round(time.Millisecond))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replay done: %d codes, %d changed\n", p.Done, p.Changed)
	return nil
}

// quarantine handles `codewatch quarantine retry [--reason R]`.
func quarantine(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("quarantine")
	env := newCommandEnv(fs, getenv, stderr, withDataKeys|withRemovalTimeout)
	reason := fs.String("reason", "", "only rows whose reason starts with this (e.g. invalid_occurred_at)")
	_, _, err := parseVerb(fs, "quarantine", args, stdout,
		"usage: codewatch quarantine retry [--reason R] [flags]\n\nParses quarantined deliveries again and stores those this version can use\n(after an upgrade or a database fix), as webhooks are stored. Safe while the\nservice runs. Reports how many were stored, were duplicates, or are still unusable.",
		[]string{"retry"}, 0)
	if err != nil {
		return err
	}
	db, err := env.open(ctx, keysRequired)
	if err != nil {
		return err
	}
	defer db.close()
	res, err := db.store.RetryQuarantine(ctx, postgres.QuarantineRetry{Reason: *reason}, func(r postgres.QuarantineRetryResult) {
		fmt.Fprintf(stdout, "quarantine retry: %d stored, %d duplicates, %d still unusable so far\n", r.Stored, r.Duplicates, r.Unusable)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "quarantine retry done: %d stored, %d duplicates, %d still unusable\n", res.Stored, res.Duplicates, res.Unusable)
	return nil
}
