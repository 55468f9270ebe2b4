package console

// The locks list and a lock's page.

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

type locksData struct {
	Locks               []lifecycle.Device
	Online, Unconfirmed string
	Next                string
}

// locks lists locks, offline and with unconfirmed deletions first when
// filtered so; filters live in the URL.
func (k *console) locks(c echo.Context) error {
	q := c.QueryParams()
	var f lifecycle.DeviceFilter
	d := locksData{Online: q.Get("online"), Unconfirmed: q.Get("has_unconfirmed_deletions")}
	for _, p := range []struct {
		name, v string
		dst     **bool
	}{{"online", d.Online, &f.Online}, {"has_unconfirmed_deletions", d.Unconfirmed, &f.HasUnconfirmedDeletions}} {
		if p.v == "" {
			continue
		}
		b, err := strconv.ParseBool(p.v)
		if err != nil {
			return handlers.InvalidParam(p.name, "must be true or false")
		}
		*p.dst = &b
	}
	cursor, err := handlers.ParseCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	f.Cursor, f.Limit = cursor, 100
	locks, next, err := k.Store.ListDevices(c.Request().Context(), f)
	if err != nil {
		return err
	}
	d.Locks = locks
	if cur := handlers.CursorOut(next); cur != nil {
		d.Next = withQuery("/locks", nil, "cursor", *cur, "online", d.Online, "has_unconfirmed_deletions", d.Unconfirmed)
	}
	return k.render(c, http.StatusOK, "locks", k.page(c, "Locks", "locks", false, d))
}

type lockData struct {
	Lock  *lifecycle.Device
	Codes []codeView
}

// lock is one lock's page: its connectivity and its codes, most urgent
// first.
func (k *console) lock(c echo.Context) error {
	id := c.Param("device_id")
	d, err := handlers.GetDevice(c.Request().Context(), k.Store, id)
	if err != nil {
		return err
	}
	data := lockData{Lock: d}
	for i := range d.AccessCodes {
		data.Codes = append(data.Codes, newCodeView(&d.AccessCodes[i]))
	}
	return k.render(c, http.StatusOK, "lock", k.page(c, "Lock "+id, "locks", true, data))
}

// lockURL is a lock's page.
func lockURL(deviceID string) string { return consolePrefix + "/locks/" + url.PathEscape(deviceID) }
