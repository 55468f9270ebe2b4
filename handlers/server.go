package handlers

// What the public and ops servers (and the console, package
// handlers/console) share: the echo router with its error handler, client
// addresses behind trusted proxies, request ids, the recoverer, the gate
// that answers 503 until the service can work, and /healthz.

import (
	"log/slog"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/internal/ids"
	"github.com/codewatch/codewatch/lifecycle"
)

// newEcho is a router with the shared plumbing: Seam-shaped errors, client
// addresses, request ids and the recoverer.
func newEcho(logger *slog.Logger, trusted []*net.IPNet) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = ErrorHandler(logger)
	e.IPExtractor = ipExtractor(trusted)
	e.Use(setRequestID)
	e.Use(recoverer(logger))
	return e
}

// ipExtractor says whom to log as a request's client: the socket's address,
// or, when the connection comes from one of the trusted proxies, the
// address they put in X-Forwarded-For. Anyone else's X-Forwarded-For is
// ignored (echo would otherwise trust any private or loopback sender).
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// setRequestID echoes a client's X-Request-Id when it is short and plain
// (safe to log and to return), and otherwise gives the request a fresh id,
// shaped like Seam's.
func setRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !plainID(id) {
			id = ids.New()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// plainID reports an id of 1 to 64 characters of [A-Za-z0-9._-].
func plainID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// recoverer turns a panic into a 500 with a log line, never a dead process.
func recoverer(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						// A stream cut on purpose (an export that
						// failed mid-way): net/http drops the connection.
						panic(r)
					}
					logger.ErrorContext(c.Request().Context(), "panic in handler", "panic", r, "path", c.Path())
					err = NewError(http.StatusInternalServerError, "internal_error", "internal error")
				}
			}()
			return next(c)
		}
	}
}

func healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

// Gate answers 503 while the service cannot do its work yet.
func Gate(available func() error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if available != nil {
				if err := available(); err != nil {
					c.Response().Header().Set("Retry-After", "5")
					return NewError(http.StatusServiceUnavailable, "unavailable", err.Error())
				}
			}
			return next(c)
		}
	}
}

// ErrorHandler renders every error, Echo's own (404, 405) included, in
// Seam's shape.
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		ae := AsAPIError(err)
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		switch {
		case ae.Status == http.StatusServiceUnavailable:
			// The cause (database down, starting, shutting down) is logged
			// where it is known; a probe every few seconds must not add a
			// line each.
			logger.DebugContext(c.Request().Context(), "request unavailable", "method", c.Request().Method, "path", c.Path(),
				"request_id", rid, "error", err)
		case ae.Status >= 500:
			logger.ErrorContext(c.Request().Context(), "request failed", "status", ae.Status, "type", ae.Type,
				"method", c.Request().Method, "path", c.Path(), "request_id", rid, "error", err)
		}
		body := map[string]any{
			// A message may quote Seam or another job's error: no NUL or
			// broken character reaches a client's JSON parser.
			"error": errorBody{Type: ae.Type, Message: lifecycle.CleanText(ae.Message, maxMessage),
				ValidationErrors: ae.ValidationErrors, Data: ae.Data, RequestID: rid},
			"ok": false,
		}
		for k, v := range ae.Beside {
			if k != "error" && k != "ok" {
				body[k] = v
			}
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(ae.Status)
			return
		}
		_ = c.JSON(ae.Status, body)
	}
}
