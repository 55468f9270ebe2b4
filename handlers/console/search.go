package console

// The search box: what an id names.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

type searchData struct {
	Q string
	// Codes and Locks are what the text names (issue 22): codes by their
	// name, their lock's or its location's; locks by their name or
	// location.
	Codes []codeView
	Locks []lifecycle.Device
}

// searchLimit bounds each list of a name search.
const searchLimit = 50

// search finds what an id names: an access code (its page), a lock or a
// workspace (the codes on it).
func (k *console) search(c echo.Context) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	if q == "" {
		return c.Redirect(http.StatusSeeOther, consolePrefix+"/")
	}
	if !handlers.ValidText(q) {
		return k.render(c, http.StatusNotFound, "search", k.page(c, "Not found", "", false, searchData{Q: q}))
	}
	ctx := c.Request().Context()
	// Ids are pasted from Seam's console, an alert or a ticket; Seam's are
	// lower-case UUIDs.
	for _, cand := range slices.Compact([]string{q, strings.ToLower(q)}) {
		_, err := k.Store.GetAccessCode(ctx, cand)
		if err == nil {
			return c.Redirect(http.StatusSeeOther, codeURL(cand))
		}
		if lifecycle.ErrorCode(err) != lifecycle.ENotFound {
			return err
		}
		// A lock: its own page.
		if _, err := k.Store.GetDevice(ctx, cand); err == nil {
			return c.Redirect(http.StatusSeeOther, lockURL(cand))
		} else if lifecycle.ErrorCode(err) != lifecycle.ENotFound {
			return err
		}
		for _, by := range []string{"device_id", "workspace_id"} {
			f := lifecycle.ListFilter{Sort: lifecycle.SortRecent, Limit: 1}
			if by == "device_id" {
				f.DeviceID = cand
			} else {
				f.WorkspaceID = cand
			}
			codes, _, err := k.Store.ListAccessCodes(ctx, f)
			if err != nil {
				return err
			}
			if len(codes) > 0 {
				return c.Redirect(http.StatusSeeOther, consolePrefix+"/codes?"+url.Values{by: {cand}}.Encode())
			}
		}
	}
	// Not an id: the names people use (a guest's, a lock's, a street).
	d := searchData{Q: q}
	if len(q) <= handlers.MaxQueryLength {
		codes, _, err := k.Store.ListAccessCodes(ctx, lifecycle.ListFilter{Query: q, Sort: lifecycle.SortUrgency, Limit: searchLimit})
		if err != nil {
			return err
		}
		for i := range codes {
			d.Codes = append(d.Codes, newCodeView(&codes[i]))
		}
		if d.Locks, _, err = k.Store.ListDevices(ctx, lifecycle.DeviceFilter{Query: q, Limit: searchLimit}); err != nil {
			return err
		}
	}
	if len(d.Codes) > 0 || len(d.Locks) > 0 {
		return k.render(c, http.StatusOK, "search", k.page(c, "Search", "", false, d))
	}
	return k.render(c, http.StatusNotFound, "search", k.page(c, "Not found", "", false, d))
}
