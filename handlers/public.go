package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/internal/ids"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
	"github.com/codewatch/codewatch/verify"
)

// MaxBody is the largest webhook body accepted (1 MiB).
const MaxBody = 1 << 20

// Ingester stores verified deliveries (the postgres Store does).
type Ingester interface {
	Ingest(ctx context.Context, d lifecycle.Delivery) (lifecycle.Result, error)
}

// Public serves the internet-facing listener: the Seam webhook and /healthz.
type Public struct {
	Verifier *verify.Verifier
	Store    Ingester
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// IngestTimeout bounds one delivery, under Svix's 15 s.
	IngestTimeout time.Duration
	// Available, when set, says why webhooks cannot be stored yet (the
	// database is not reachable or migrated at start-up): they are then
	// answered 503 so that Seam retries.
	Available func() error
}

// NewPublicServer returns the public router.
func NewPublicServer(p *Public) *echo.Echo {
	e := newEcho(p.Logger)
	e.POST("/webhooks/seam", p.webhook, gate(p.Available))
	e.GET("/healthz", healthz)
	return e
}

func newEcho(logger *slog.Logger) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = ErrorHandler(logger)
	e.Use(setRequestID)
	e.Use(recoverer(logger))
	return e
}

// setRequestID gives every request a fresh id, shaped like Seam's. A
// client's own X-Request-Id is not echoed: it would reach logs unchecked.
func setRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderXRequestID, ids.New())
		return next(c)
	}
}

// recoverer turns a panic into a 500 with a log line, never a dead process.
func recoverer(logger *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					logger.Error("panic in handler", "panic", r, "path", c.Path())
					err = newError(http.StatusInternalServerError, "internal_error", "internal error")
				}
			}()
			return next(c)
		}
	}
}

func healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

// gate answers 503 while the service cannot do its work yet.
func gate(available func() error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if available != nil {
				if err := available(); err != nil {
					c.Response().Header().Set("Retry-After", "5")
					return newError(http.StatusServiceUnavailable, "unavailable", err.Error())
				}
			}
			return next(c)
		}
	}
}

func (p *Public) webhook(c echo.Context) error {
	start := time.Now()
	req := c.Request()
	if req.ContentLength > MaxBody {
		return p.tooLarge(c)
	}
	// Read at most one byte more than allowed: enough to know, no more.
	buf := bytes.NewBuffer(make([]byte, 0, bodyCap(req.ContentLength)))
	_, err := buf.ReadFrom(io.LimitReader(req.Body, MaxBody+1))
	body := buf.Bytes()
	if err != nil {
		return newError(http.StatusBadRequest, "invalid_input", "could not read the request body")
	}
	if len(body) > MaxBody {
		return p.tooLarge(c)
	}

	msgID, err := p.Verifier.Verify(body, req.Header)
	if err != nil {
		var ve *verify.Error
		reason := string(verify.NoMatch)
		if errors.As(err, &ve) {
			reason = string(ve.Kind)
		}
		p.Metrics.SignatureFailures.WithLabelValues(reason).Inc()
		p.Metrics.WebhooksReceived.WithLabelValues("unknown", "rejected").Inc()
		p.Logger.Warn("webhook rejected", "reason", reason, "remote", c.RealIP(),
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "bytes", len(body))
		return newError(http.StatusUnauthorized, "invalid_signature", err.Error())
	}
	if !validText(msgID) {
		// Svix ids are short ASCII; this one cannot even be stored as text.
		p.Metrics.WebhooksReceived.WithLabelValues("unknown", "rejected").Inc()
		return invalidParam("svix-id", "must be at most 255 bytes of UTF-8 text without NUL")
	}

	ctx, cancel := context.WithTimeout(req.Context(), p.IngestTimeout)
	defer cancel()
	res, err := p.Store.Ingest(ctx, lifecycle.Delivery{MessageID: msgID, Body: body})
	if err != nil {
		p.Metrics.WebhooksReceived.WithLabelValues("unknown", "unavailable").Inc()
		p.Logger.Warn("webhook not stored", "message_id", msgID, "error", err)
		ae := fromDomain(err)
		if ae.Status >= 500 {
			// Always retryable: Seam must send it again.
			ae = newError(http.StatusServiceUnavailable, "unavailable", "the event could not be stored; retry later")
		}
		return ae
	}
	p.Metrics.IngestDuration.Observe(time.Since(start).Seconds())
	p.Metrics.WebhooksReceived.WithLabelValues(metrics.EventTypeLabel(res.EventType), string(res.Outcome)).Inc()
	switch res.Outcome {
	case lifecycle.Duplicate:
		return c.JSON(http.StatusOK, map[string]any{"ok": true, "duplicate": true})
	case lifecycle.Quarantined:
		reason := res.Reason
		p.Metrics.Quarantined.WithLabelValues((&lifecycle.Unusable{Reason: reason}).Kind()).Inc()
		p.Logger.Warn("webhook quarantined", "message_id", msgID, "reason", reason)
		return c.JSON(http.StatusOK, map[string]any{"ok": true, "quarantined": true})
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

// bodyCap sizes the read buffer from Content-Length, so a body is read into
// one allocation; ReadFrom wants 512 bytes spare to stop without growing.
func bodyCap(n int64) int {
	if n <= 0 || n > MaxBody {
		return 4 << 10
	}
	return int(n) + 512
}

func (p *Public) tooLarge(c echo.Context) error {
	p.Metrics.WebhooksReceived.WithLabelValues("unknown", "too_large").Inc()
	// The rest of the body is not read; close rather than drain it.
	c.Response().Header().Set(echo.HeaderConnection, "close")
	return newError(http.StatusRequestEntityTooLarge, "payload_too_large", "the body is larger than 1 MiB")
}
