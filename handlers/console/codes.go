package console

// The codes list, a code's page, and what can be done from it:
// acknowledging its trouble, and the deployment's extra actions
// (CodeAction). Their views are in codes_view.go, their filter in filter.go.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

type codesData struct {
	Codes  []codeView
	Filter codeFilter
	Next   string
	States []lifecycle.DeletionState
}

func (k *console) codes(c echo.Context) error {
	f, err := parseCodeFilter(c, true)
	if err != nil {
		return err
	}
	lf := f.listFilter()
	lf.Limit = 100
	codes, next, err := k.Store.ListAccessCodes(c.Request().Context(), lf)
	if err != nil {
		return err
	}
	d := codesData{Filter: f, States: lifecycle.States}
	for i := range codes {
		d.Codes = append(d.Codes, newCodeView(&codes[i]))
	}
	if cur := handlers.ListCursorOut(next, lf.Sort); cur != nil {
		d.Next = f.url(*cur)
	}
	return k.render(c, http.StatusOK, "codes", k.page(c, "Codes", "codes", false, d))
}

// timelineLimit is how many of a code's newest events its page shows.
const timelineLimit = 300

type codeData struct {
	Code      codeView
	Evidence  *lifecycle.Evidence
	Timeline  []eventView
	Alerts    []alertView
	Actions   []CodeAction
	CanAck    bool
	Truncated int
}

func (k *console) code(c echo.Context) error {
	id := c.Param("access_code_id")
	ctx := c.Request().Context()
	code, err := handlers.GetAccessCode(ctx, k.Store, id)
	if err != nil {
		return err
	}
	ev, err := k.Store.CodeEvidence(ctx, id, timelineLimit)
	if err != nil {
		return err
	}
	deliveries, err := k.Store.CodeAlerts(ctx, id)
	if err != nil {
		return err
	}
	d := codeData{Code: newCodeView(code), Evidence: ev, Alerts: alertViews(deliveries),
		CanAck: code.NeedsTroubleshooting, Truncated: ev.Total - len(ev.Events)}
	for _, e := range ev.Events {
		d.Timeline = append(d.Timeline, newEventView(e))
	}
	for _, a := range k.Actions {
		if a.Shown == nil || a.Shown(code) {
			d.Actions = append(d.Actions, a)
		}
	}
	return k.render(c, http.StatusOK, "code", k.page(c, id, "codes", true, d))
}

func (k *console) acknowledge(c echo.Context) error {
	id := c.Param("access_code_id")
	if !handlers.ValidText(id) {
		return handlers.AccessCodeNotFound(id)
	}
	note := strings.TrimSpace(c.FormValue("note"))
	if len(note) > 2000 || strings.ContainsRune(note, 0) || !utf8.ValidString(note) {
		k.setFlash(c, "error", "The note must be text of at most 2000 bytes; nothing was acknowledged.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	}
	troubleID := c.FormValue("trouble_id")
	if !handlers.ValidText(troubleID) {
		troubleID = "\x00invalid" // matches no trouble: refused as changed
	}
	by := sessionOf(c).Name
	_, changed, err := k.Store.Acknowledge(c.Request().Context(), id, by, note, troubleID)
	switch lifecycle.ErrorCode(err) {
	case "":
	case lifecycle.ENotFound:
		return handlers.AccessCodeNotFound(id)
	case lifecycle.ETroubleChanged:
		k.setFlash(c, "error", "Nothing was acknowledged: this code's trouble changed since the page was shown. Read it again below, then acknowledge what it shows now.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	case lifecycle.EConflict:
		k.setFlash(c, "error", "There is nothing to acknowledge: this code does not need troubleshooting.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	default:
		return err
	}
	if changed {
		k.logger.InfoContext(c.Request().Context(), "trouble acknowledged", "access_code_id", id, "acknowledged_by", by, "via", "console")
		k.setFlash(c, "ok", "Acknowledged "+id+": it has left the triage list and a resolution alert is on its way.")
	} else {
		k.setFlash(c, "ok", id+" was already acknowledged; the first acknowledgement stands.")
	}
	return c.Redirect(http.StatusSeeOther, consolePrefix+"/")
}

func (k *console) action(c echo.Context) error {
	id := c.Param("access_code_id")
	if !handlers.ValidText(id) {
		return handlers.AccessCodeNotFound(id)
	}
	i := slices.IndexFunc(k.Actions, func(a CodeAction) bool { return a.Name == c.Param("action") })
	if i < 0 {
		return echo.ErrNotFound
	}
	a := k.Actions[i]
	if a.Confirm != "" && c.FormValue("confirm") != "yes" {
		k.setFlash(c, "error", a.Label+": nothing done; tick “"+a.Confirm+"” to confirm.")
		return c.Redirect(http.StatusSeeOther, codeURL(id))
	}
	by := sessionOf(c).Name
	msg, err := a.Do(c.Request().Context(), id, by)
	switch {
	case lifecycle.ErrorCode(err) == lifecycle.ENotFound:
		return handlers.AccessCodeNotFound(id)
	case err != nil:
		k.logger.WarnContext(c.Request().Context(), "console action failed", "action", a.Name, "access_code_id", id, "by", by, "error", err)
		k.setFlash(c, "error", a.Label+" failed: "+err.Error())
	default:
		k.logger.InfoContext(c.Request().Context(), "console action", "action", a.Name, "access_code_id", id, "by", by)
		k.setFlash(c, "ok", msg)
	}
	return c.Redirect(http.StatusSeeOther, codeURL(id))
}

func codeURL(id string) string { return consolePrefix + "/codes/" + url.PathEscape(id) }
