package seam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ListEventsParams filters events/list. Set exactly one of Since and Between.
type ListEventsParams struct {
	// Since asks for events created after this time.
	Since time.Time
	// Between asks for events created between the two times.
	Between [2]time.Time
	// EventTypes, AccessCodeIDs and DeviceIDs narrow the answer when set.
	// Seam's fake lets events lacking the field through these filters.
	EventTypes    []string
	AccessCodeIDs []string
	DeviceIDs     []string
	// Limit caps the events in the answer (Seam's default is 500). Seam's
	// fake ignores it.
	Limit int
}

// DefaultEventPageLimit is the page size ListEventsWindowed asks for when
// given none: Seam's own default.
const DefaultEventPageLimit = 500

// wireTime is how times go to Seam: UTC with milliseconds, the precision
// Seam (and its fake, which parses with JavaScript's Date) keeps.
const wireTime = "2006-01-02T15:04:05.000Z07:00"

// ListEvents reads events (events/list) and returns each event's JSON
// exactly as Seam sent it, for storing as evidence.
func (c *Client) ListEvents(ctx context.Context, p ListEventsParams) ([]json.RawMessage, error) {
	body := map[string]any{}
	hasSince := !p.Since.IsZero()
	hasBetween := !p.Between[0].IsZero() || !p.Between[1].IsZero()
	switch {
	case hasSince == hasBetween:
		return nil, errors.New("seam events/list: set exactly one of Since and Between")
	case hasSince:
		body["since"] = p.Since.UTC().Truncate(time.Millisecond).Format(wireTime)
	default:
		if p.Between[0].IsZero() || p.Between[1].IsZero() || !p.Between[0].Before(p.Between[1]) {
			return nil, fmt.Errorf("seam events/list: Between needs two times, earlier first (got %v, %v)",
				p.Between[0], p.Between[1])
		}
		// Round outwards so that milliseconds cannot shrink the window.
		body["between"] = [2]string{
			p.Between[0].UTC().Truncate(time.Millisecond).Format(wireTime),
			ceilMillis(p.Between[1].UTC()).Format(wireTime),
		}
	}
	if len(p.EventTypes) > 0 {
		body["event_types"] = p.EventTypes
	}
	if len(p.AccessCodeIDs) > 0 {
		body["access_code_ids"] = p.AccessCodeIDs
	}
	if len(p.DeviceIDs) > 0 {
		body["device_ids"] = p.DeviceIDs
	}
	if p.Limit > 0 {
		body["limit"] = p.Limit
	}
	var out struct {
		// RawMessage keeps each element's bytes as they came.
		Events []json.RawMessage `json:"events"`
	}
	reqID, err := c.call(ctx, "events/list", body, &out, "")
	if err != nil {
		return nil, err
	}
	if out.Events == nil {
		// An answer without "events" is not an empty list: say so.
		return nil, fmt.Errorf("seam events/list: answer has no events list (request %s)", reqID)
	}
	return out.Events, nil
}

func ceilMillis(t time.Time) time.Time {
	if tr := t.Truncate(time.Millisecond); !tr.Equal(t) {
		return tr.Add(time.Millisecond)
	}
	return t
}

// ListEventsWindowed reads every event created in [from, to] with
// ListEventsWindowedFiltered and no filter.
func (c *Client) ListEventsWindowed(ctx context.Context, from, to time.Time, pageLimit int, fn func(raw []json.RawMessage) error) error {
	return c.ListEventsWindowedFiltered(ctx, ListEventsParams{}, from, to, pageLimit, fn)
}

// ListEventsWindowedFiltered reads every event created in [from, to] that
// matches filter's EventTypes, AccessCodeIDs and DeviceIDs, oldest window
// first, handing each window's events to fn as Seam sent them.
//
// events/list has no usable paging, so a window whose answer holds exactly
// pageLimit events may have been cut short: it is split in two and each
// half read again, down to Config.MinEventWindow; a window that is still
// full there is handed on as it is, with a warning in the log. An answer
// with more than pageLimit events comes from a server that ignores the
// limit (Seam's fake) and is complete.
//
// Each window is widened by a millisecond on both sides, because the fake
// (and perhaps Seam) treats both ends as exclusive, so an event can come
// twice: the caller dedupes by event_id.
func (c *Client) ListEventsWindowedFiltered(ctx context.Context, filter ListEventsParams, from, to time.Time, pageLimit int, fn func(raw []json.RawMessage) error) error {
	if !from.Before(to) {
		return fmt.Errorf("seam events/list: window from %v to %v is empty", from, to)
	}
	if pageLimit <= 0 {
		pageLimit = DefaultEventPageLimit
	}
	minWindow := max(c.cfg.MinEventWindow, 2*time.Millisecond)
	type window struct{ from, to time.Time }
	stack := []window{{from, to}}
	for len(stack) > 0 {
		w := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p := filter
		p.Since = time.Time{}
		p.Between = [2]time.Time{w.from.Add(-time.Millisecond), w.to.Add(time.Millisecond)}
		p.Limit = pageLimit
		events, err := c.ListEvents(ctx, p)
		if err != nil {
			return err
		}
		if len(events) == pageLimit {
			span := w.to.Sub(w.from)
			if span/2 >= minWindow {
				mid := w.from.Add(span / 2).Truncate(time.Millisecond)
				// Later half below the earlier one: windows come out oldest first.
				stack = append(stack, window{mid, w.to}, window{w.from, mid})
				continue
			}
			c.log.LogAttrs(ctx, slog.LevelWarn, "seam: events/list window still full at the smallest size; some events may be missing",
				slog.Time("from", w.from), slog.Time("to", w.to), slog.Int("limit", pageLimit))
		}
		if len(events) == 0 {
			continue
		}
		if err := fn(events); err != nil {
			return err
		}
	}
	return nil
}
