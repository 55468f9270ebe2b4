package console

// Errors under /console are pages, not JSON.

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
)

type errorData struct {
	Status    int
	Heading   string
	Message   string
	RequestID string
}

// errorPage renders any error under /console as a page.
func (k *console) errorPage(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae := handlers.AsAPIError(err)
	rid := c.Response().Header().Get(echo.HeaderXRequestID)
	d := errorData{Status: ae.Status, RequestID: rid, Message: ae.Message}
	switch {
	case ae.Type == "access_code_not_found":
		d.Heading = "No such access code"
		d.Message = "codewatch has no access code " + fmt.Sprint(ae.Data["access_code_id"]) + ". It knows a code once Seam has sent an event about it."
	case ae.Status == http.StatusNotFound:
		d.Heading, d.Message = "Page not found", "There is no such page in the console."
	case ae.Status == http.StatusServiceUnavailable:
		d.Heading = "codewatch cannot reach its database"
		d.Message = "The page will work again once it can (" + ae.Message + "). Try again in a moment."
		k.logger.DebugContext(c.Request().Context(), "console unavailable", "path", c.Path(), "request_id", rid, "error", err)
	case ae.Status == http.StatusForbidden:
		d.Heading = "Not sent"
	case ae.Status >= 500:
		d.Heading = "Something went wrong"
		d.Message = "codewatch could not show this page. The error is logged with request id " + rid + "."
		k.logger.ErrorContext(c.Request().Context(), "console request failed", "status", ae.Status, "method", c.Request().Method,
			"path", c.Path(), "request_id", rid, "error", err)
	case ae.Status == http.StatusMethodNotAllowed:
		d.Heading, d.Message = "Not allowed", "This page cannot be used that way."
	default:
		d.Heading = "That did not work"
	}
	p := page{Title: d.Heading, Data: d}
	if s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now()); s != nil {
		c.Set("console_session", s)
		p = k.page(c, d.Heading, "", false, d)
	}
	if err := k.render(c, ae.Status, "error", p); err != nil {
		k.logger.ErrorContext(c.Request().Context(), "console error page failed", "error", err)
	}
}
