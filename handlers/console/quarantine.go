package console

// Quarantined deliveries, their bodies masked, and retrying one.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

type quarantineData struct {
	Items []quarantineView
	Next  string
}

func (k *console) quarantine(c echo.Context) error {
	cursor, err := handlers.ParseCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	items, next, err := k.Store.ListQuarantine(c.Request().Context(), 50, cursor)
	if err != nil {
		return err
	}
	d := quarantineData{}
	for _, q := range items {
		d.Items = append(d.Items, newQuarantineView(q))
	}
	if n := handlers.CursorOut(next); n != nil {
		d.Next = consolePrefix + "/quarantine?cursor=" + url.QueryEscape(*n)
	}
	return k.render(c, http.StatusOK, "quarantine", k.page(c, "Quarantine", "quarantine", false, d))
}

func (k *console) retryQuarantined(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("quarantine_id"), 10, 64)
	if err != nil || id <= 0 {
		return echo.ErrNotFound
	}
	out, err := k.Store.RetryQuarantined(c.Request().Context(), id)
	switch {
	case lifecycle.ErrorCode(err) == lifecycle.ENotFound:
		k.setFlash(c, "error", fmt.Sprintf("Delivery %d is no longer in quarantine (retried already?).", id))
	case err != nil:
		return err
	case out.Outcome == lifecycle.Stored:
		k.logger.InfoContext(c.Request().Context(), "quarantine retried", "quarantine_id", id, "outcome", out.Outcome, "by", sessionOf(c).Name)
		k.setFlash(c, "ok", fmt.Sprintf("Delivery %d is now a stored event and has left quarantine.", id))
	case out.Outcome == lifecycle.Duplicate:
		k.logger.InfoContext(c.Request().Context(), "quarantine retried", "quarantine_id", id, "outcome", out.Outcome, "by", sessionOf(c).Name)
		k.setFlash(c, "ok", fmt.Sprintf("Delivery %d was an event stored already; it has left quarantine.", id))
	default:
		k.setFlash(c, "error", fmt.Sprintf("Delivery %d is still unusable (%s); it stays in quarantine.", id, out.Reason))
	}
	return c.Redirect(http.StatusSeeOther, consolePrefix+"/quarantine")
}

// quarantineView is one quarantined delivery, its body masked.
type quarantineView struct {
	lifecycle.QuarantinedDelivery
	RawJSON, RawNote string
}

func newQuarantineView(q lifecycle.QuarantinedDelivery) quarantineView {
	v := quarantineView{QuarantinedDelivery: q}
	if q.Body != nil {
		v.RawJSON, v.RawNote = maskedJSON([]byte(*q.Body))
	} else {
		v.RawNote = "The body is not text; it is not shown."
	}
	v.Body = nil
	return v
}
