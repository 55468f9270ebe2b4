package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

var deviceListParams = []string{"has_unconfirmed_deletions", "online", "workspace_id", "limit", "cursor", "q"}

func (o *Ops) listDevices(c echo.Context) error {
	q, err := queryOf(c, deviceListParams...)
	if err != nil {
		return err
	}
	var f lifecycle.DeviceFilter
	for name, dst := range map[string]**bool{"has_unconfirmed_deletions": &f.HasUnconfirmedDeletions, "online": &f.Online} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return InvalidParam(name, "must be true or false")
			}
			*dst = &b
		}
	}
	if f.WorkspaceID = q.Get("workspace_id"); !ValidText(f.WorkspaceID) {
		return InvalidParam("workspace_id", "must be an id of at most 255 bytes of text")
	}
	if f.Query, err = parseQuery(q.Get("q")); err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	f.Limit = limit
	if f.Cursor, err = ParseCursor(q.Get("cursor")); err != nil {
		return err
	}
	devices, next, err := o.Store.ListDevices(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"devices": devices, "next_cursor": CursorOut(next), "ok": true})
}

func (o *Ops) getDevice(c echo.Context) error {
	d, err := GetDevice(c.Request().Context(), o.Store, c.Param("device_id"))
	if err != nil {
		return err
	}
	d.AccessCodesNextCursor = ListCursorOut(d.AccessCodesNext, lifecycle.SortUrgency)
	// As c.JSON would write it, without reflection (a lock's page holds up
	// to lifecycle.DeviceCodesLimit codes).
	b := make([]byte, 0, 512+1100*len(d.AccessCodes))
	b = append(b, `{"device":`...)
	b = appendDeviceJSON(b, d)
	b = append(b, ",\"ok\":true}\n"...)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}
