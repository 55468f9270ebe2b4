package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

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
	// Budget bounds the bytes of bodies not yet verified (nil: no bound).
	Budget *Budget
	// TrustedProxies may set X-Forwarded-For (CODEWATCH_TRUSTED_PROXIES).
	TrustedProxies []*net.IPNet
	// Available, when set, says why webhooks cannot be stored yet (the
	// database is not reachable or migrated at start-up): they are then
	// answered 503 so that Seam retries.
	Available func() error

	// RefusalDelay is how long a refusal for a spent budget is held
	// (default 1s, its Retry-After).
	RefusalDelay time.Duration

	rejectLog everySecond
}

func (p *Public) refusalDelay() time.Duration {
	if p.RefusalDelay == 0 {
		return time.Second
	}
	return p.RefusalDelay
}

// NewPublicServer returns the public router.
func NewPublicServer(p *Public) *echo.Echo {
	e := newEcho(p.Logger, p.TrustedProxies)
	e.POST("/webhooks/seam", p.webhook, Gate(p.Available))
	e.GET("/healthz", healthz)
	return e
}

func (p *Public) webhook(c echo.Context) error {
	start := time.Now()
	req := c.Request()
	if req.ContentLength > MaxBody {
		return p.tooLarge(c, false)
	}
	// What needs no body is checked before reading it: an unsigned upload
	// costs nothing.
	if _, err := p.Verifier.CheckHeaders(req.Header); err != nil {
		c.Response().Header().Set(echo.HeaderConnection, "close")
		return p.rejected(c, err, 0)
	}
	// Read at most one byte more than allowed: enough to know, no more.
	body, held, err := p.Budget.readBody(req.Body, req.ContentLength, MaxBody)
	defer held.release()
	switch {
	case errors.Is(err, errBudget):
		p.Metrics.WebhooksReceived.WithLabelValues("unknown", "overloaded").Inc()
		// The refusal is held for its Retry-After second: a flood of
		// uploads then waits instead of reconnecting at once, and costs a
		// parked goroutine each (its body stays unread, in the kernel).
		select {
		case <-time.After(p.refusalDelay()):
		case <-req.Context().Done():
		}
		c.Response().Header().Set("Retry-After", "1")
		c.Response().Header().Set(echo.HeaderConnection, "close")
		return NewError(http.StatusServiceUnavailable, "overloaded", "too many webhook bodies are being received at once; retry shortly")
	case err != nil:
		return NewError(http.StatusBadRequest, "invalid_input", "could not read the request body")
	case len(body) > MaxBody:
		held.release() // what is left is discarded, not held
		return p.tooLarge(c, true)
	}

	msgID, err := p.Verifier.Verify(body, req.Header)
	held.release() // verified or refused: no longer an unknown sender's bytes
	if err != nil {
		return p.rejected(c, err, len(body))
	}
	if !ValidText(msgID) {
		// Svix ids are short ASCII; this one cannot even be stored as text.
		p.Metrics.WebhooksReceived.WithLabelValues("unknown", "rejected").Inc()
		return InvalidParam("svix-id", "must be at most 255 bytes of UTF-8 text without NUL")
	}

	ctx, cancel := context.WithTimeout(req.Context(), p.IngestTimeout)
	defer cancel()
	res, err := p.Store.Ingest(ctx, lifecycle.Delivery{MessageID: msgID, Body: body})
	if err != nil {
		p.Metrics.WebhooksReceived.WithLabelValues("unknown", "unavailable").Inc()
		p.Logger.WarnContext(c.Request().Context(), "webhook not stored", "message_id", msgID, "error", err)
		ae := fromDomain(err)
		if ae.Status >= 500 {
			// Always retryable: Seam must send it again.
			ae = NewError(http.StatusServiceUnavailable, "unavailable", "the event could not be stored; retry later")
		}
		return ae
	}
	p.Metrics.IngestDuration.Observe(time.Since(start).Seconds())
	if res.Outcome == lifecycle.Stored && !res.OccurredAt.IsZero() {
		p.Metrics.IngestLag.Observe(max(0, time.Since(res.OccurredAt).Seconds()))
	}
	p.Metrics.WebhooksReceived.WithLabelValues(metrics.EventTypeLabel(res.EventType), string(res.Outcome)).Inc()
	switch res.Outcome {
	case lifecycle.Duplicate:
		return c.JSON(http.StatusOK, map[string]any{"ok": true, "duplicate": true})
	case lifecycle.Quarantined:
		reason := res.Reason
		p.Metrics.Quarantined.WithLabelValues((&lifecycle.Unusable{Reason: reason}).Kind()).Inc()
		p.Logger.WarnContext(c.Request().Context(), "webhook quarantined", "message_id", msgID, "reason", reason)
		return c.JSON(http.StatusOK, map[string]any{"ok": true, "quarantined": true})
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

// rejected answers a delivery whose signature does not hold. The log line
// is rate-limited: a flood of forgeries must not become a flood of lines.
func (p *Public) rejected(c echo.Context, err error, size int) error {
	var ve *verify.Error
	reason := string(verify.NoMatch)
	if errors.As(err, &ve) {
		reason = string(ve.Kind)
	}
	p.Metrics.SignatureFailures.WithLabelValues(reason).Inc()
	p.Metrics.WebhooksReceived.WithLabelValues("unknown", "rejected").Inc()
	if ok, suppressed := p.rejectLog.allow(time.Now()); ok {
		p.Logger.WarnContext(c.Request().Context(), "webhook rejected", "reason", reason, "remote", c.RealIP(),
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "bytes", size,
			"suppressed_since_last", suppressed)
	}
	return NewError(http.StatusUnauthorized, "invalid_signature", err.Error())
}

// everySecond lets one event a second through and counts the rest.
type everySecond struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (e *everySecond) allow(now time.Time) (bool, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.Sub(e.last) < time.Second {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// tooLarge answers a body over MaxBody; started says whether its reading
// began.
func (p *Public) tooLarge(c echo.Context, started bool) error {
	p.Metrics.WebhooksReceived.WithLabelValues("unknown", "too_large").Inc()
	return refuseTooLarge(c, started, "the body is larger than 1 MiB")
}
