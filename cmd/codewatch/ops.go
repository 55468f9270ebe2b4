package main

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/proof"
	"github.com/codewatch/codewatch/seamsync"
)

// opsHandler is the ops listener's handler: the /v1 API, /readyz, the
// metrics and the console, with the console's buttons that call Seam's API
// when it is configured. All of the console's wiring is here.
func (a *App) opsHandler(jobsPage http.Handler) *echo.Echo {
	cfg := a.cfg
	toks := make([]handlers.Token, len(cfg.OpsTokens))
	for i, t := range cfg.OpsTokens {
		toks[i] = handlers.Token{Name: t.Name, Value: t.Value}
	}
	cons := &console.Console{Store: a.store, PublicURL: cfg.PublicURL, SessionTTL: cfg.SessionTTL, Jobs: jobsPage}
	opsCfg := &handlers.Ops{
		Store: a.store, Tokens: toks, Metrics: a.metrics, Logger: a.logger, Ready: a.ready.ready, Available: a.ready.available,
		TrustedProxies: cfg.TrustedProxies,
		Console:        cons,
	}
	if a.signing != nil {
		opsCfg.Proofs = &proof.Service{Records: a.store, Keys: a.signing}
	}
	if a.seamSync != nil {
		opsCfg.Seam = a.seamSync
		cons.Actions = seamActions(a.seamSync)
	}
	return handlers.NewOpsServer(opsCfg)
}

// seamActions are the console's buttons that call Seam's API: the same
// calls as POST /v1/access_codes/{id}/reconcile and .../delete.
func seamActions(sy *seamsync.Service) []console.CodeAction {
	return []console.CodeAction{
		{Name: "reconcile", Label: "Reconcile now",
			Help: "Look the code up in Seam's API now: only Seam's own not-found after the deletion confirms it; Seam's errors and warnings are shown.",
			Do: func(ctx context.Context, id, _ string) (string, error) {
				c, done, err := sy.ReconcileWithin(ctx, id, handlers.SeamWait)
				switch {
				case err != nil:
					return "", err
				case !done:
					return "The lookup in Seam's API has not finished; it goes on in the background and this page shows its result when it has.", nil
				}
				return "Looked up in Seam: the code is " + string(c.DeletionState) + ".", nil
			}},
		{Name: "delete", Label: "Request deletion", Danger: true, Confirm: "Yes, ask Seam to delete this code",
			Help: "Ask Seam to delete the code from its lock; codewatch follows the deletion until the lock confirms it.",
			Shown: func(c *lifecycle.AccessCode) bool {
				return c.DeletedAt == nil && c.DeletionState != lifecycle.DeletionRequested
			},
			Do: func(ctx context.Context, id, by string) (string, error) {
				c, done, err := sy.RequestDeletionWithin(ctx, id, by, handlers.SeamWait)
				switch {
				case err != nil:
					return "", err
				case !done || c == nil:
					return "Seam has not answered the deletion request yet; it goes on in the background and this page shows the request when Seam has answered.", nil
				}
				attempt := ""
				if c.DeletionRequest != nil {
					attempt = " (action attempt " + c.DeletionRequest.ActionAttemptID + ")"
				}
				return "Deletion requested" + attempt + ": the code is " + string(c.DeletionState) + ".", nil
			}},
	}
}
