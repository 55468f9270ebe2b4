package handlers

// What the ops API (and the console, package handlers/console) reads from a
// request: ids, states, limits and the opaque cursors of its lists.

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

// queryOf is the request's query, or a 400 naming a parameter not in known.
func queryOf(c echo.Context, known ...string) (url.Values, error) {
	q := c.QueryParams()
	for k := range q {
		if !slices.Contains(known, k) {
			return nil, InvalidParam(k, "unknown parameter")
		}
	}
	return q, nil
}

// ValidText reports whether s can be an id codewatch stores: Postgres text
// holds neither NUL nor invalid UTF-8, and ids are at most 255 bytes.
func ValidText(s string) bool {
	return len(s) <= lifecycle.MaxIDLength && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// ParseListCursor reads a code list's cursor. A list cursor is opaque to
// clients: base64 of the sort and the last row's place in it. One made for
// one sort is refused for the other.
func ParseListCursor(v, sort string) (*lifecycle.ListCursor, error) {
	if v == "" {
		return nil, nil
	}
	bad := InvalidParam("cursor", "not a cursor returned by this API for sort="+sort)
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, bad
	}
	f := strings.Split(string(b), ".")
	num := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && n >= 0
	}
	switch {
	case sort == lifecycle.SortRecent && len(f) == 2 && f[0] == "r":
		if id, ok := num(f[1]); ok && id > 0 {
			return &lifecycle.ListCursor{ID: id}, nil
		}
	case sort == lifecycle.SortRecent && len(f) == 1:
		// Cursors made before sort existed: base64 of the id.
		if id, ok := num(f[0]); ok && id > 0 {
			return &lifecycle.ListCursor{ID: id}, nil
		}
	case sort == lifecycle.SortUrgency && len(f) == 5 && (f[0] == "t" || f[0] == "u"):
		seg, ok1 := num(f[1])
		rank, ok2 := num(f[2])
		id, ok3 := num(f[4])
		if !ok1 || !ok2 || !ok3 || seg > 2 || rank >= 1000 {
			break
		}
		c := &lifecycle.ListCursor{Segment: int(seg), Rank: int(rank), ID: id}
		switch at, err := strconv.ParseInt(f[3], 10, 64); {
		case f[0] == "u" && err == nil && at >= 0:
			// Cursors made before "t": Unix nanoseconds, 0 for none.
			if at > 0 {
				c.At = time.Unix(0, at).UTC()
			}
			return c, nil
		case f[0] == "t" && f[3] == "":
			return c, nil
		case f[0] == "t" && err == nil && at >= pgTimeMin:
			c.At = time.UnixMicro(at).UTC()
			return c, nil
		}
	}
	return nil, bad
}

// A "t" cursor's time may be any a row holds, in Unix microseconds: what
// Postgres's timestamptz holds from 4713 BC on (its end, 294276 AD, lies
// beyond int64 microseconds), not only what ingest accepts today (rows
// stored before that check may lie outside it).
var pgTimeMin = time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC).UnixMicro()

// ListCursorOut is the cursor of the code list after c (nil: none).
func ListCursorOut(c *lifecycle.ListCursor, sort string) *string {
	if c == nil {
		return nil
	}
	var raw string
	if sort == lifecycle.SortRecent {
		raw = "r." + strconv.FormatInt(c.ID, 10)
	} else {
		// The deletion time in Unix microseconds (what Postgres keeps),
		// which span every time codewatch stores, before 1970 too; empty
		// for none. (Nanoseconds, in "u" cursors, overflow after 2262.)
		at := ""
		if !c.At.IsZero() {
			at = strconv.FormatInt(c.At.UnixMicro(), 10)
		}
		raw = fmt.Sprintf("t.%d.%d.%s.%d", c.Segment, c.Rank, at, c.ID)
	}
	s := base64.RawURLEncoding.EncodeToString([]byte(raw))
	return &s
}

func parseLimit(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > lifecycle.MaxListLimit {
		return 0, InvalidParam("limit", fmt.Sprintf("must be an integer from 1 to %d", lifecycle.MaxListLimit))
	}
	return n, nil
}

// ParseCursor reads the cursor of a list keyed by number (quarantine,
// locks). Cursors are opaque to clients: base64 of the last row's key.
func ParseCursor(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err == nil {
		if n, err := strconv.ParseInt(string(b), 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, InvalidParam("cursor", "not a cursor returned by this API")
}

// CursorOut is the cursor of the list after key n (nil for 0: none).
func CursorOut(n int64) *string {
	if n == 0 {
		return nil
	}
	s := base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
	return &s
}

// ValidState reports whether s is one of lifecycle.States.
func ValidState(s lifecycle.DeletionState) bool {
	for _, st := range lifecycle.States {
		if s == st {
			return true
		}
	}
	return false
}

// StatesList is lifecycle.States for an error message.
func StatesList() string {
	s := make([]string, len(lifecycle.States))
	for i, st := range lifecycle.States {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// MaxQueryLength bounds ?q= (names are at most lifecycle.MaxNameLength).
const MaxQueryLength = 200

// parseQuery reads ?q=, the text a code's, lock's or location's name must
// contain (issue 22): trimmed; "" matches everything.
func parseQuery(v string) (string, error) {
	v = strings.TrimSpace(v)
	if len(v) > MaxQueryLength || !ValidText(v) {
		return "", InvalidParam("q", fmt.Sprintf("must be text of at most %d bytes", MaxQueryLength))
	}
	return v, nil
}
