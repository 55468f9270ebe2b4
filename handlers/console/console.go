// Package console is the ops console: server-rendered pages on the ops
// listener (never the public one) for the people who watch deletions. Sign
// in with an ops token (session.go, signin.go); triage, a code's evidence,
// acknowledging, locks, quarantine and the alert outbox, one file per page
// family with its views beside it. Pages are html/template with their CSS
// and JavaScript embedded (this folder's .html, .css and .js; pages.go).
//
// The console shares the ops API's tokens, Seam-shaped errors, gate, ids
// and cursors: it imports those from package handlers, and handlers does not
// import it (handlers.Ops.Console takes the console's routes: routes.go).
package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

// consolePrefix is where the console lives on the ops listener.
const consolePrefix = "/console"

// Store is what the console reads and changes: the ops API's store and a
// few reads of its own (postgres/console.go).
type Store interface {
	handlers.OpsStore
	// CodeEvidence returns the newest limit events naming a code, oldest
	// first, with raw bodies (masked before they are shown).
	CodeEvidence(ctx context.Context, id string, limit int) (*lifecycle.Evidence, error)
	// CodeAlerts returns every delivery of a code's alerts.
	CodeAlerts(ctx context.Context, id string) ([]lifecycle.AlertDelivery, error)
	// DeletionRecord is a code's deletion record (issue 22's proof).
	DeletionRecord(ctx context.Context, id string) (*lifecycle.DeletionRecord, error)
	ListDeliveries(ctx context.Context, f lifecycle.DeliveryFilter) ([]lifecycle.AlertDelivery, *lifecycle.DeliveryCursor, error)
	CountDeliveries(ctx context.Context) (map[string]int64, *time.Time, error)
	RetryQuarantined(ctx context.Context, id int64) (lifecycle.RetryOutcome, error)
}

// CodeAction is a button on a code's page beyond acknowledging: the hook for
// features that exist only in some deployments (issue 11's "reconcile now"
// and "request deletion" when the Seam API is configured). The button shows
// only for actions serve passes in Console.Actions, and only where Shown
// says so; pressing it posts (with CSRF protection) to
// /console/codes/{id}/actions/{Name}.
type CodeAction struct {
	// Name is the URL segment, e.g. "reconcile" or "delete".
	Name string
	// Label is the button's text, e.g. "Reconcile now".
	Label string
	// Help is one sentence beside the button saying what it does.
	Help string
	// Confirm, when set, is the label of a checkbox that must be ticked
	// for the action to run (a deletion), e.g. "Yes, delete this code".
	Confirm string
	// Danger styles the button as destructive.
	Danger bool
	// Shown reports whether the button belongs on this code's page (nil:
	// always).
	Shown func(code *lifecycle.AccessCode) bool
	// Do runs the action for the signed-in person `by` (the token's name)
	// and returns the message to show. A *lifecycle.Error with ENotFound
	// shows the not-found page; any other error is shown as a failure
	// message on the code's page.
	Do func(ctx context.Context, accessCodeID, by string) (string, error)
}

// Console configures the ops console (nil in handlers.Ops: no console).
type Console struct {
	Store Store
	// PublicURL is CODEWATCH_PUBLIC_URL: https makes the cookies Secure,
	// and its Origin is accepted beside the request's own.
	PublicURL *url.URL
	// SessionTTL is how long a sign-in lasts (CODEWATCH_SESSION_TTL).
	SessionTTL time.Duration
	// Refresh is how often live pages update themselves (default 5s).
	Refresh time.Duration
	// Actions are the extra buttons of a code's page (see CodeAction).
	Actions []CodeAction
	// Jobs, when set, is River's job UI, served under /console/jobs/
	// behind the session, with a "Jobs" entry in the menu (jobs.go).
	Jobs http.Handler
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// console is the running console.
type console struct {
	*Console
	keys   []sessionKey
	ck     cookies
	logger *slog.Logger
	pages  *pages
	// proofs signs deletion records (handlers.Ops.Proofs); nil without
	// CODEWATCH_SIGNING_KEY.
	proofs handlers.Proofs
	// triageCache: the unfiltered home page, shared (sharedTriage).
	triageCache triageCache
}
