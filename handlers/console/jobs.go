package console

// River's job UI (riverqueue.com/riverui, built by cmd/codewatch) under
// /console/jobs/: the background jobs (alert deliveries, follows, lookups,
// backfills, sweeps), their arguments (ids and times, never a PIN: package
// jobs holds them to that) and errors, with River's own buttons (retry,
// cancel, delete, pause a queue).
//
// It is behind the console's session like every page: anonymous requests
// are sent to sign in (the UI's JSON API answers 401), never served. Its
// JSON requests carry no form token, so besides the session cookie
// (SameSite=Strict: never sent from another site) every request that
// changes something must say it comes from the console's own origin
// (Origin, or Sec-Fetch-Site: same-origin). It has a Content-Security-Policy
// of its own: its scripts and styles, from its own origin only.

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
)

// jobsPrefix is where River's UI lives; its JSON API is under jobsAPI.
const (
	jobsPrefix = consolePrefix + "/jobs"
	jobsAPI    = jobsPrefix + "/api/"
)

// jobsCSP allows River UI's own scripts, styles, images and fonts, from this
// origin only; its API calls go to the same origin.
const jobsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// registerJobs mounts h (River's UI) under /console/jobs/.
func (k *console) registerJobs(e *echo.Echo, o *handlers.Ops, h http.Handler) {
	e.GET(jobsPrefix, func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, jobsPrefix+"/") })
	j := e.Group(jobsPrefix, k.jobsHeaders, k.jobsSession, handlers.Gate(o.Available))
	j.Any("/*", echo.WrapHandler(h))
}

func (k *console) jobsHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", jobsCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// jobsSession lets a signed-in request through; changes only from the
// console's own pages.
func (k *console) jobsSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		api := strings.HasPrefix(r.URL.Path, jobsAPI)
		s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now())
		if s == nil {
			if api || r.Header.Get(liveHeader) != "" {
				return handlers.NewError(http.StatusUnauthorized, "unauthorized", "signed out: sign in to the console again")
			}
			if r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.Header.Get("Sec-Fetch-Mode") == "navigate" {
				return k.render(c, http.StatusOK, "reopen", page{Title: "Opening", Data: safeNext(r.URL.RequestURI())})
			}
			next := consolePrefix + "/"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			return c.Redirect(http.StatusSeeOther, consolePrefix+"/signin?next="+url.QueryEscape(next))
		}
		c.Set("console_session", s)
		if api && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			return handlers.NewError(http.StatusForbidden, "forbidden", "River's API answers the console's own pages only")
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if err := k.ck.ownOrigin(c); err != nil {
				return handlers.NewError(http.StatusForbidden, "forbidden", err.Error())
			}
		}
		return next(c)
	}
}

// ownOrigin is sameOrigin for requests that carry no form token: the
// browser must say where the request comes from, and it must be here.
func (k cookies) ownOrigin(c echo.Context) error {
	r := c.Request()
	if r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		return errNoOrigin
	}
	return k.sameOrigin(c)
}

var errNoOrigin = &originError{"This request does not say where it comes from (no Origin): River's buttons work from the console's own pages only."}

type originError struct{ msg string }

func (e *originError) Error() string { return e.msg }
