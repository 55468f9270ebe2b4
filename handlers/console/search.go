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
}

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
	return k.render(c, http.StatusNotFound, "search", k.page(c, "Not found", "", false, searchData{Q: q}))
}
