// Package seam is a small client for the parts of Seam's API that codewatch
// uses to delete access codes, check on deletions and backfill events.
//
// Every call is POST {base}/<route> with a JSON body and the API key as a
// bearer token. Calls share one global rate limit (requests per second);
// deletions also wait for Seam's per-device limit (20 a minute). Transport
// errors, 429 and 5xx answers are retried with jittered exponential backoff,
// honouring Retry-After; other 4xx answers are returned at once as *Error.
//
// The client never logs the API key, request or response bodies (access
// codes carry PINs), only routes, statuses, attempts and Seam's request ids.
package seam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// DefaultBaseURL is Seam's API.
const DefaultBaseURL = "https://connect.getseam.com"

// Defaults for the zero values of Config.
const (
	DefaultRPS                    = 5
	DefaultDeviceDeletesPerMinute = 20
	DefaultTimeout                = 30 * time.Second
	DefaultMaxAttempts            = 5
	DefaultBaseBackoff            = 500 * time.Millisecond
	DefaultMaxWait                = 30 * time.Second
	DefaultMaxElapsed             = 2 * time.Minute
	DefaultMaxResponseBytes       = 64 << 20
	DefaultMinEventWindow         = time.Second
)

// Config configures a Client. Only APIKey is required.
type Config struct {
	// APIKey is the Seam API key (SEAM_API_KEY). Never logged.
	APIKey string
	// BaseURL is Seam's API root (SEAM_API_URL); DefaultBaseURL if empty.
	BaseURL string
	// Timeout bounds one attempt of one request, body included.
	Timeout time.Duration
	// RPS is the global rate limit in requests per second shared by every
	// call of the Client (CODEWATCH_SEAM_RPS); DefaultRPS if 0, no limit
	// if +Inf. Retries count as requests.
	RPS float64
	// Burst is how many requests may go at once before RPS applies;
	// RPS rounded up (at least 1) if 0.
	Burst int
	// DeviceDeletesPerMinute is Seam's limit on deletions per device in any
	// minute; DefaultDeviceDeletesPerMinute if 0, no limit if negative.
	DeviceDeletesPerMinute int
	// MaxAttempts bounds the attempts of one call (1 = no retries).
	MaxAttempts int
	// BaseBackoff is the first retry's wait; it doubles on each retry, with
	// jitter, up to MaxWait.
	BaseBackoff time.Duration
	// MaxWait bounds one wait between attempts. A Retry-After longer than
	// this ends the retries: the *Error carries it for the caller.
	MaxWait time.Duration
	// MaxElapsed bounds the time one call spends retrying.
	MaxElapsed time.Duration
	// MaxResponseBytes bounds a response body.
	MaxResponseBytes int64
	// MinEventWindow is the smallest window ListEventsWindowed splits to.
	MinEventWindow time.Duration

	// HTTPClient sends the requests (a copy of it that never follows
	// redirects); if nil, a default one. Its own Timeout, if any, applies on
	// top of Timeout.
	HTTPClient *http.Client
	// Now is the clock (time.Now if nil); Sleep waits for d or until ctx
	// ends (a timer if nil). Tests pass a fake clock for both so that
	// backoff and rate limits cost no real time.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger gets one debug line per attempt and one warning per retry;
	// discarded if nil.
	Logger *slog.Logger
	// OnAttempt, when set, is told of every attempt's route, outcome
	// (Outcome) and duration: the Seam API metrics.
	OnAttempt func(route, outcome string, took time.Duration)
}

// LogValue keeps the API key out of logs should someone log a Config.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("base_url", c.BaseURL),
		slog.Bool("api_key_set", c.APIKey != ""),
		slog.Float64("rps", c.RPS),
		slog.Int("device_deletes_per_minute", c.DeviceDeletesPerMinute),
		slog.Duration("timeout", c.Timeout),
		slog.Int("max_attempts", c.MaxAttempts),
	)
}

// Client calls Seam's API. Safe for concurrent use; share one per API key so
// that its rate limits hold across callers.
type Client struct {
	cfg     Config
	base    string
	hc      *http.Client
	log     *slog.Logger
	global  *rate.Limiter
	devices *deviceLimiter
	codeDev *codeDevices
}

// New checks cfg, fills in defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, errors.New("seam: an API key is required (SEAM_API_KEY)")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("seam: base URL %q is not an http(s) URL (SEAM_API_URL)", cfg.BaseURL)
	}
	switch {
	case math.IsNaN(cfg.RPS) || cfg.RPS < 0:
		return nil, fmt.Errorf("seam: requests per second must be positive, got %v", cfg.RPS)
	case cfg.RPS == 0:
		cfg.RPS = DefaultRPS
	}
	if cfg.Burst < 0 || cfg.Timeout < 0 || cfg.MaxAttempts < 0 || cfg.BaseBackoff < 0 ||
		cfg.MaxWait < 0 || cfg.MaxElapsed < 0 || cfg.MaxResponseBytes < 0 || cfg.MinEventWindow < 0 {
		return nil, errors.New("seam: burst, durations, attempts and sizes must not be negative")
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(1, int(math.Min(math.Ceil(cfg.RPS), 1e6)))
	}
	if cfg.DeviceDeletesPerMinute == 0 {
		cfg.DeviceDeletesPerMinute = DefaultDeviceDeletesPerMinute
	}
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	cfg.BaseBackoff = orDefault(cfg.BaseBackoff, DefaultBaseBackoff)
	cfg.MaxWait = orDefault(cfg.MaxWait, DefaultMaxWait)
	cfg.MaxElapsed = orDefault(cfg.MaxElapsed, DefaultMaxElapsed)
	cfg.MinEventWindow = orDefault(cfg.MinEventWindow, DefaultMinEventWindow)
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	// Seam does not redirect; following one would resend the body (and
	// perhaps the key) somewhere else, and take the far end's answer as
	// Seam's. A 3xx comes back as *Error, whatever client is given.
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit := rate.Limit(cfg.RPS)
	if math.IsInf(cfg.RPS, 1) {
		limit = rate.Inf
	}
	c := &Client{
		cfg:     cfg,
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		hc:      hc,
		log:     log,
		global:  rate.NewLimiter(limit, cfg.Burst),
		codeDev: newCodeDevices(4096),
	}
	if cfg.DeviceDeletesPerMinute > 0 {
		c.devices = newDeviceLimiter(cfg.DeviceDeletesPerMinute, time.Minute)
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// call sends body to route, retrying as the package doc says, and decodes a
// 2xx answer into out. deviceKey, when not empty, makes each attempt wait
// for that device's deletion limit too. It returns Seam's request id.
func (c *Client) call(ctx context.Context, route string, body, out any, deviceKey string) (string, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("seam %s: encode request: %w", route, err)
	}
	start := c.cfg.Now()
	var last error
	for attempt := 1; ; attempt++ {
		if err := c.wait(ctx, deviceKey); err != nil {
			return "", stopped(route, err, last)
		}
		reqID, retryAfter, err := c.attempt(ctx, route, payload, out, attempt)
		if err == nil {
			return reqID, nil
		}
		if ctx.Err() != nil {
			return "", stopped(route, ctx.Err(), err)
		}
		last = err
		if !retryable(err) {
			return "", err
		}
		if attempt >= c.cfg.MaxAttempts {
			return "", exhausted(attempt, err)
		}
		wait := c.backoff(attempt)
		if retryAfter >= 0 {
			if retryAfter > c.cfg.MaxWait {
				// Retrying sooner than Seam asked would only earn another
				// refusal; hand the wait to the caller instead.
				return "", exhausted(attempt, err)
			}
			wait = retryAfter
		}
		if elapsed := c.cfg.Now().Sub(start); elapsed+wait > c.cfg.MaxElapsed {
			return "", exhausted(attempt, err)
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "seam: retrying",
			slog.String("route", route), slog.Int("attempt", attempt),
			slog.Duration("wait", wait), slog.String("reason", reason(err)))
		if err := c.cfg.Sleep(ctx, wait); err != nil {
			return "", stopped(route, err, last)
		}
	}
}

// wait holds a request back until the global limit, then the device's
// deletion limit, let it go. The device comes second so that its slot is
// taken right before the request leaves.
func (c *Client) wait(ctx context.Context, deviceKey string) error {
	now := c.cfg.Now()
	r := c.global.ReserveN(now, 1)
	if !r.OK() {
		return errors.New("rate limiter refused a request")
	}
	if d := r.DelayFrom(now); d > 0 {
		if err := c.cfg.Sleep(ctx, d); err != nil {
			r.CancelAt(c.cfg.Now())
			return err
		}
	}
	if deviceKey == "" || c.devices == nil {
		return ctx.Err()
	}
	return c.devices.wait(ctx, deviceKey, c.cfg.Now, c.cfg.Sleep)
}

// attempt makes one request. retryAfter is -1 unless the answer carried a
// usable Retry-After.
func (c *Client) attempt(ctx context.Context, route string, payload []byte, out any, n int) (reqID string, retryAfter time.Duration, err error) {
	retryAfter = -1
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.base+"/"+route, bytes.NewReader(payload))
	if err != nil {
		return "", retryAfter, fmt.Errorf("seam %s: %w", route, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "codewatch-seam")

	began := c.cfg.Now()
	if c.cfg.OnAttempt != nil {
		defer func() { c.cfg.OnAttempt(route, Outcome(err), c.cfg.Now().Sub(began)) }()
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.debug(ctx, route, n, 0, "", began, err)
		return "", retryAfter, &transportError{route: route, err: scrub(err)}
	}
	defer resp.Body.Close()
	reqID = resp.Header.Get("seam-request-id")
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err == nil && int64(len(raw)) > c.cfg.MaxResponseBytes {
		err = fmt.Errorf("response larger than %d bytes", c.cfg.MaxResponseBytes)
		c.debug(ctx, route, n, resp.StatusCode, reqID, began, err)
		return reqID, retryAfter, fmt.Errorf("seam %s: %w (request %s)", route, err, reqID)
	}
	if err != nil {
		c.debug(ctx, route, n, resp.StatusCode, reqID, began, err)
		return reqID, retryAfter, &transportError{route: route, err: fmt.Errorf("read response: %w", err)}
	}
	c.debug(ctx, route, n, resp.StatusCode, reqID, began, nil)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := parseError(route, resp.StatusCode, reqID, resp.Header.Get("Content-Type"), raw)
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			// Seam never redirects: say where to, it names what answered.
			e.Got += `, redirect to "` + printable([]byte(loc), 120) + `"`
		}
		e.Attempts = n
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now()); ok {
			e.RetryAfter = ra
			retryAfter = ra
		}
		return reqID, retryAfter, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return reqID, retryAfter, &AnswerError{Route: route, RequestID: reqID,
				Problem: fmt.Sprintf("a %d answer that is not the JSON Seam sends (%s)", resp.StatusCode,
					describeBody(resp.Header.Get("Content-Type"), raw))}
		}
	}
	return reqID, retryAfter, nil
}

func (c *Client) debug(ctx context.Context, route string, n, status int, reqID string, began time.Time, err error) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("route", route), slog.Int("attempt", n),
		slog.Duration("took", c.cfg.Now().Sub(began)),
	}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	if reqID != "" {
		attrs = append(attrs, slog.String("request_id", reqID))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "seam: request", attrs...)
}

// backoff is the wait before retry number attempt: BaseBackoff doubled per
// retry, capped at MaxWait, then jittered down by up to half so that many
// clients failing together do not come back together.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.MaxWait
	if shift := attempt - 1; shift < 32 {
		if b := c.cfg.BaseBackoff << shift; b > 0 && b < d {
			d = b
		}
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs < 0 {
			return 0, false
		}
		if secs > 1e6 {
			secs = 1e6
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// transportError is a failure to get an answer at all.
type transportError struct {
	route string
	err   error
}

func (e *transportError) Error() string { return fmt.Sprintf("seam %s: %v", e.route, e.err) }
func (e *transportError) Unwrap() error { return e.err }

// scrub drops the URL from a *url.Error: it names only our base URL, but
// keeping errors free of request details is simpler to reason about.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func retryable(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Status == http.StatusTooManyRequests ||
			(se.Status >= 500 && se.Status != http.StatusNotImplemented)
	}
	return false
}

// reason names a retried failure for the log without Seam's message, which
// may quote request data.
func reason(err error) string {
	var se *Error
	if errors.As(err, &se) {
		s := strconv.Itoa(se.Status)
		if se.Type != "" {
			s += " " + se.Type
		}
		if se.RequestID != "" {
			s += " (request " + se.RequestID + ")"
		}
		return s
	}
	return err.Error()
}

// exhausted reports the last failure of a call that will not be retried again.
func exhausted(attempts int, err error) error {
	var se *Error
	if errors.As(err, &se) {
		return err // Attempts is in the message already
	}
	return fmt.Errorf("%w (gave up after %d attempts)", err, attempts)
}

// stopped reports a call ended by its context, with the failure before, if any.
func stopped(route string, err, last error) error {
	if last == nil {
		return fmt.Errorf("seam %s: %w", route, err)
	}
	return fmt.Errorf("seam %s: %w (after: %w)", route, err, last)
}
