package console

// A code list's filter, as the triage and codes pages take it from the URL.

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

// codeFilter is a code list's filter as it stands in the URL.
type codeFilter struct {
	States               []lifecycle.DeletionState
	Reason               string
	NeedsTroubleshooting string // "", "true" or "false"
	WorkspaceID          string
	DeviceID             string
	Sort                 string
	Cursor               *lifecycle.ListCursor
}

func (f codeFilter) empty() bool {
	return len(f.States) == 0 && f.Reason == "" && f.NeedsTroubleshooting == "" && f.WorkspaceID == "" && f.DeviceID == ""
}

// HasState reports whether the filter selects state s (for checkboxes).
func (f codeFilter) HasState(s lifecycle.DeletionState) bool { return slices.Contains(f.States, s) }

func (f codeFilter) listFilter() lifecycle.ListFilter {
	lf := lifecycle.ListFilter{States: f.States, Reason: f.Reason, WorkspaceID: f.WorkspaceID,
		DeviceID: f.DeviceID, Sort: f.Sort, Cursor: f.Cursor}
	if f.NeedsTroubleshooting != "" {
		b := f.NeedsTroubleshooting == "true"
		lf.NeedsTroubleshooting = &b
	}
	return lf
}

// url is the codes page with this filter, at cursor ("" for the first page).
func (f codeFilter) url(cursor string) string {
	q := url.Values{}
	for _, s := range f.States {
		q.Add("state", string(s))
	}
	sort := "" // urgency, the default
	if f.Sort == lifecycle.SortRecent {
		sort = f.Sort
	}
	return withQuery("/codes", q, "reason", f.Reason, "needs_troubleshooting", f.NeedsTroubleshooting,
		"workspace_id", f.WorkspaceID, "device_id", f.DeviceID, "cursor", cursor, "sort", sort)
}

// parseCodeFilter reads a list's filter from the query (the home page
// takes workspace, lock and reason; the codes page all of them). A state
// may be given as repeated parameters (checkboxes) or a comma list (the
// API's form).
func parseCodeFilter(c echo.Context, full bool) (codeFilter, error) {
	q := c.QueryParams()
	f := codeFilter{Reason: q.Get("reason"), WorkspaceID: strings.TrimSpace(q.Get("workspace_id")),
		DeviceID: strings.TrimSpace(q.Get("device_id")), Sort: lifecycle.SortUrgency}
	for name, v := range map[string]string{"workspace_id": f.WorkspaceID, "device_id": f.DeviceID} {
		if !handlers.ValidText(v) {
			return f, handlers.InvalidParam(name, "must be an id of at most 255 bytes of text")
		}
	}
	if f.Reason != "" && !slices.Contains(lifecycle.Reasons, f.Reason) {
		return f, handlers.InvalidParam("reason", fmt.Sprintf("%q is not one of %s", f.Reason, strings.Join(lifecycle.Reasons, ", ")))
	}
	if !full {
		return f, nil
	}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			st := lifecycle.DeletionState(strings.TrimSpace(s))
			if st == "" {
				continue
			}
			if !handlers.ValidState(st) {
				return f, handlers.InvalidParam("state", fmt.Sprintf("%q is not one of %s", st, handlers.StatesList()))
			}
			if !slices.Contains(f.States, st) {
				f.States = append(f.States, st)
			}
		}
	}
	switch v := q.Get("needs_troubleshooting"); v {
	case "", "true", "false":
		f.NeedsTroubleshooting = v
	default:
		return f, handlers.InvalidParam("needs_troubleshooting", "must be true or false")
	}
	switch v := q.Get("sort"); v {
	case "", lifecycle.SortUrgency:
	case lifecycle.SortRecent:
		f.Sort = v
	default:
		return f, handlers.InvalidParam("sort", "must be urgency or recent")
	}
	var err error
	f.Cursor, err = handlers.ParseListCursor(q.Get("cursor"), f.Sort)
	return f, err
}
