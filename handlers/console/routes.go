package console

// The console's route table, and the headers every page carries.

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
)

// Register adds the console's routes to the ops router: handlers.Ops calls
// it when its Console is set. The console signs in with o's Tokens, logs to
// its Logger, and answers 503 while its Available says so.
func (con *Console) Register(e *echo.Echo, o *handlers.Ops) {
	cfg := *con
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	k := &console{Console: &cfg, keys: deriveSessionKeys(o.Tokens), ck: cookies{publicURL: cfg.PublicURL},
		logger: o.Logger, pages: mustParsePages(cfg.Now), proofs: o.Proofs}

	// Console errors are pages, not JSON.
	apiErrors := e.HTTPErrorHandler
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		p := c.Request().URL.Path
		if (p == consolePrefix || strings.HasPrefix(p, consolePrefix+"/")) && !strings.HasPrefix(p, jobsAPI) {
			k.errorPage(err, c)
			return
		}
		apiErrors(err, c)
	}

	e.GET(consolePrefix, func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, consolePrefix+"/") })
	g := e.Group(consolePrefix, k.headers)
	g.GET("/assets/:name", k.asset)
	g.GET("/signin", k.signinPage)
	g.POST("/signin", k.signin)
	// Everything else needs a session, and the database.
	s := g.Group("", k.requireSession, handlers.Gate(o.Available))
	s.POST("/signout", k.signout)
	s.GET("/", k.triage)
	s.GET("/codes", k.codes)
	s.GET("/codes/:access_code_id", k.code)
	s.GET("/codes/:access_code_id/record", k.record)
	s.GET("/codes/:access_code_id/record.json", k.recordJSON)
	s.GET("/locks", k.locks)
	s.GET("/locks/:device_id", k.lock)
	s.POST("/codes/:access_code_id/acknowledge", k.acknowledge)
	s.POST("/codes/:access_code_id/actions/:action", k.action)
	s.GET("/quarantine", k.quarantine)
	s.POST("/quarantine/:quarantine_id/retry", k.retryQuarantined)
	s.GET("/alerts", k.alerts)
	s.GET("/search", k.search)
	g.RouteNotFound("/*", func(c echo.Context) error { return echo.ErrNotFound })
	if cfg.Jobs != nil {
		k.registerJobs(e, o, cfg.Jobs)
	}
}

// headers: console pages hold door-lock evidence; they are never cached,
// framed, or allowed to load anything from elsewhere.
func (k *console) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}
