package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// A body over its limit is answered 413, but only once the rest of it has
// been read and thrown away: a connection closed with bytes of the request
// unread is reset (RST), and a client still sending, or that sends its whole
// body before reading, then often loses the answer. What is read is bounded
// (drainLimit, drainTime) and held nowhere: past the bound the connection is
// closed as before. (nginx calls this a lingering close.)
const (
	drainLimit = 8 << 20
	drainTime  = 10 * time.Second
)

// refuseTooLarge discards the rest of the request's body (discardBody) and
// returns the 413, in Seam's error shape, that closes the connection.
// started says whether reading the body began.
func refuseTooLarge(c echo.Context, started bool, message string) error {
	discardBody(c, started)
	c.Response().Header().Set(echo.HeaderConnection, "close")
	return NewError(http.StatusRequestEntityTooLarge, "payload_too_large", message)
}

// discardBody reads and discards what is left of the request's body, up to
// drainLimit bytes within drainTime. It reads nothing of a body declared
// longer than that (it would be cut anyway), nor of one whose client waits
// for "100 Continue" before sending it (reading would ask for the body; not
// reading, the client sends none and reads the answer).
func discardBody(c echo.Context, started bool) {
	req := c.Request()
	if req.ContentLength > drainLimit+MaxBody {
		return
	}
	if !started && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		return
	}
	body := req.Body
	if lb, ok := body.(*limitedBody); ok {
		body = lb.rc
	}
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(drainTime))
	_, _ = io.CopyN(io.Discard, body, drainLimit)
}

// OpsBodyLimit bounds a request body on the ops listener: its JSON bodies
// and the console's forms are a few hundred bytes.
const OpsBodyLimit = 64 << 10

// errBodyTooLarge is what reading a body past its limit returns.
var errBodyTooLarge = errors.New("request body too large")

// limitBodies answers 413 to a request whose declared body is over limit,
// and makes reading a body of unknown length (chunked) fail with
// errBodyTooLarge past it: net/http would otherwise let a form parse read 10
// MB, and the routes' own limits cut bodies short silently.
func limitBodies(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return refuseTooLarge(c, false, fmt.Sprintf("the body is larger than %d KiB", limit>>10))
			}
			if req.ContentLength < 0 {
				req.Body = &limitedBody{rc: req.Body, left: limit}
			}
			return next(c)
		}
	}
}

// limitedBody is a request body that fails with errBodyTooLarge past its
// limit (like http.MaxBytesReader, without closing the connection: the
// refusal discards the rest first).
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte past the limit tells a body at the limit from a longer one.
		var one [1]byte
		if n, err := l.rc.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// readOpsBody reads a request body on the ops listener, or returns the 413
// of one over OpsBodyLimit (after discarding its rest).
func readOpsBody(c echo.Context) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, OpsBodyLimit+1))
	switch {
	case errors.Is(err, errBodyTooLarge) || err == nil && len(raw) > OpsBodyLimit:
		return nil, refuseTooLarge(c, true, fmt.Sprintf("the body is larger than %d KiB", OpsBodyLimit>>10))
	case err != nil:
		return nil, NewError(http.StatusBadRequest, "invalid_input", "could not read the request body")
	}
	return raw, nil
}
