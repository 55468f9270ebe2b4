package handlers

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/metrics"
)

// Token is one ops credential; Name is recorded as acknowledged_by.
type Token struct {
	Name  string
	Value string
}

// OpsStore is what the ops API reads and changes.
type OpsStore interface {
	GetAccessCode(ctx context.Context, id string) (*lifecycle.AccessCode, error)
	ListAccessCodes(ctx context.Context, f lifecycle.ListFilter) ([]lifecycle.AccessCode, *lifecycle.ListCursor, error)
	Summarize(ctx context.Context) (*lifecycle.StatusSummary, error)
	ListQuarantine(ctx context.Context, limit int, cursor int64) ([]lifecycle.QuarantinedDelivery, int64, error)
	Acknowledge(ctx context.Context, id, by, note, troubleID string) (code *lifecycle.AccessCode, changed bool, err error)
	ListDevices(ctx context.Context, f lifecycle.DeviceFilter) ([]lifecycle.Device, int64, error)
	GetDevice(ctx context.Context, id string) (*lifecycle.Device, error)
}

// Ops serves the ops listener: the /v1 status API (bearer token), health,
// readiness and metrics.
type Ops struct {
	Store   OpsStore
	Tokens  []Token
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Ready reports whether this replica should receive traffic.
	Ready func(ctx context.Context) error
	// Available, when set, says why /v1 cannot answer yet (503).
	Available func() error
	// TrustedProxies may set X-Forwarded-For (CODEWATCH_TRUSTED_PROXIES).
	TrustedProxies []*net.IPNet
	// Seam requests deletions and lookups from Seam's API; nil when
	// SEAM_API_KEY is not set (those routes then answer 501).
	Seam SeamOps
	// Console, when set, serves the ops console under /console (signed in
	// with the same Tokens): package handlers/console's Console.
	Console OpsRoutes
	// SeamWait bounds how long a route waits for Seam's API (SeamWait if 0).
	SeamWait time.Duration
	// Proofs signs deletion records (proof.go); nil without
	// CODEWATCH_SIGNING_KEY (those routes then answer 501).
	Proofs Proofs
}

func (o *Ops) seamWait() time.Duration {
	if o.SeamWait > 0 {
		return o.SeamWait
	}
	return SeamWait
}

// OpsRoutes adds routes to the ops router. The ops console (package
// handlers/console) is one: it imports from handlers what it shares with the
// ops API (tokens, Seam-shaped errors, the gate, ids and cursors), so
// handlers cannot import it; NewOpsServer calls its Register instead.
type OpsRoutes interface {
	Register(e *echo.Echo, o *Ops)
}

// SeamOps is what the ops API asks of Seam's API (seamsync.Service). Each
// call stops waiting after wait and says whether it finished; what has not
// finished goes on in the background.
type SeamOps interface {
	RequestDeletionWithin(ctx context.Context, id, by string, wait time.Duration) (*lifecycle.AccessCode, bool, error)
	ReconcileWithin(ctx context.Context, id string, wait time.Duration) (*lifecycle.AccessCode, bool, error)
}

// SeamWait bounds how long POST .../delete and .../reconcile (and the
// console's buttons) wait for Seam's API: well inside the ops server's
// 30 s write timeout, so that the answer always reaches the client. What
// has not finished by then answers 202 saying where to look.
const SeamWait = 20 * time.Second

// NewOpsServer returns the ops router. Every route is listed here.
func NewOpsServer(o *Ops) *echo.Echo {
	e := newEcho(o.Logger, o.TrustedProxies)
	e.Use(limitBodies(OpsBodyLimit))
	e.GET("/healthz", healthz)
	e.GET("/readyz", o.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{})))
	// The console's home (package handlers/console).
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/console/") })
	if o.Console != nil {
		o.Console.Register(e, o)
	}

	v1 := e.Group("/v1", o.authenticate, Gate(o.Available))
	v1.GET("/access_codes", o.listAccessCodes)
	v1.GET("/access_codes/:access_code_id", o.getAccessCode)
	v1.POST("/access_codes/:access_code_id/acknowledge", o.acknowledge)
	v1.POST("/access_codes/:access_code_id/delete", o.requestDeletion)
	v1.POST("/access_codes/:access_code_id/reconcile", o.reconcile)
	v1.GET("/access_codes/:access_code_id/proof", o.proof)
	v1.GET("/proof/public_key", o.publicKey)
	v1.GET("/exports/deletions", o.exportDeletions)
	v1.GET("/devices", o.listDevices)
	v1.GET("/devices/:device_id", o.getDevice)
	v1.GET("/summary", o.summary)
	v1.GET("/quarantine", o.quarantine)
	return e
}

// authenticate checks the bearer token against every configured token in
// constant time, and remembers the token's name.
func (o *Ops) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// The scheme is case-insensitive (RFC 7235): "bearer" works too.
		scheme, given, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		given = strings.TrimSpace(given)
		name := ""
		if strings.EqualFold(scheme, "Bearer") && given != "" {
			for _, t := range o.Tokens {
				if subtle.ConstantTimeCompare([]byte(given), []byte(t.Value)) == 1 {
					name = t.Name
				}
			}
		}
		if name == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="codewatch"`)
			return NewError(http.StatusUnauthorized, "unauthorized",
				"missing or unknown bearer token: send Authorization: Bearer <CODEWATCH_OPS_TOKEN>")
		}
		c.Set("token_name", name)
		return next(c)
	}
}

func (o *Ops) readyz(c echo.Context) error {
	if err := o.Ready(c.Request().Context()); err != nil {
		return NewError(http.StatusServiceUnavailable, "unavailable", err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"ok": true})
}

func (o *Ops) getAccessCode(c echo.Context) error {
	code, err := GetAccessCode(c.Request().Context(), o.Store, c.Param("access_code_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"access_code": code, "ok": true})
}

var listParams = []string{"deletion_state", "needs_troubleshooting", "workspace_id", "device_id", "limit", "cursor", "sort", "q"}

func (o *Ops) listAccessCodes(c echo.Context) error {
	q, err := queryOf(c, listParams...)
	if err != nil {
		return err
	}
	var f lifecycle.ListFilter
	if v := q.Get("deletion_state"); v != "" {
		for _, s := range strings.Split(v, ",") {
			st := lifecycle.DeletionState(strings.TrimSpace(s))
			if !ValidState(st) {
				return InvalidParam("deletion_state", fmt.Sprintf("%q is not one of %s", st, StatesList()))
			}
			f.States = append(f.States, st)
		}
	}
	if v := q.Get("needs_troubleshooting"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return InvalidParam("needs_troubleshooting", "must be true or false")
		}
		f.NeedsTroubleshooting = &b
	}
	f.WorkspaceID, f.DeviceID = q.Get("workspace_id"), q.Get("device_id")
	for name, v := range map[string]string{"workspace_id": f.WorkspaceID, "device_id": f.DeviceID} {
		if !ValidText(v) {
			return InvalidParam(name, "must be an id of at most 255 bytes of text")
		}
	}
	if f.Query, err = parseQuery(q.Get("q")); err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	f.Limit = limit
	switch f.Sort = q.Get("sort"); f.Sort {
	case "":
		f.Sort = lifecycle.SortUrgency
	case lifecycle.SortUrgency, lifecycle.SortRecent:
	default:
		return InvalidParam("sort", "must be urgency or recent")
	}
	if f.Cursor, err = ParseListCursor(q.Get("cursor"), f.Sort); err != nil {
		return err
	}
	codes, next, err := o.Store.ListAccessCodes(c.Request().Context(), f)
	if err != nil {
		return err
	}
	// What c.JSON would write for {"access_codes", "next_cursor", "ok"},
	// without its reflection (appendCodesJSON).
	b := make([]byte, 0, 64+1100*len(codes))
	b = append(b, `{"access_codes":`...)
	b = appendCodesJSON(b, codes)
	b = append(b, `,"next_cursor":`...)
	if cur := ListCursorOut(next, f.Sort); cur != nil {
		b = append(b, '"')
		b = append(b, *cur...) // base64url: nothing to escape
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, ",\"ok\":true}\n"...)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

type acknowledgeBody struct {
	Note string `json:"note"`
	// TroubleID is the trouble being acknowledged (the code's trouble_id
	// when it was shown); without it, whatever trouble the code has now.
	TroubleID string `json:"trouble_id"`
}

func (o *Ops) acknowledge(c echo.Context) error {
	id := c.Param("access_code_id")
	if !ValidText(id) {
		return AccessCodeNotFound(id)
	}
	var body acknowledgeBody
	raw, err := readOpsBody(c)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return InvalidParam("note", "the body must be a JSON object like {\"note\":\"checked the lock on site\"}")
		}
	}
	if len(body.Note) > 2000 || strings.ContainsRune(body.Note, 0) || !utf8.ValidString(body.Note) {
		return InvalidParam("note", "must be text of at most 2000 bytes")
	}
	if !ValidText(body.TroubleID) {
		return InvalidParam("trouble_id", "must be a trouble_id as a code shows it")
	}
	by, _ := c.Get("token_name").(string)
	code, changed, err := o.Store.Acknowledge(c.Request().Context(), id, by, body.Note, body.TroubleID)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return AccessCodeNotFound(id)
	}
	if lifecycle.ErrorCode(err) == lifecycle.ETroubleChanged {
		// What the person must look at again: the code as it is now.
		e := fromDomain(err)
		e.Data = map[string]any{"access_code_id": id, "trouble_id": body.TroubleID}
		cur, gerr := o.Store.GetAccessCode(c.Request().Context(), id)
		if gerr != nil {
			return gerr
		}
		e.Beside = map[string]any{"access_code": cur}
		return e
	}
	if lifecycle.ErrorCode(err) == lifecycle.EConflict {
		e := fromDomain(err)
		e.Type = "nothing_to_acknowledge"
		return e
	}
	if err != nil {
		return err
	}
	if changed {
		o.Logger.InfoContext(c.Request().Context(), "trouble acknowledged", "access_code_id", id, "acknowledged_by", by)
	}
	return c.JSON(http.StatusOK, map[string]any{"access_code": code, "ok": true})
}

func (o *Ops) summary(c echo.Context) error {
	sum, err := o.Store.Summarize(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"summary": sum, "ok": true})
}

func (o *Ops) quarantine(c echo.Context) error {
	q, err := queryOf(c, "limit", "cursor")
	if err != nil {
		return err
	}
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	cursor, err := ParseCursor(q.Get("cursor"))
	if err != nil {
		return err
	}
	items, next, err := o.Store.ListQuarantine(c.Request().Context(), limit, cursor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"quarantined_deliveries": items, "next_cursor": CursorOut(next), "ok": true})
}

var errSeamOff = lifecycle.Errorf(lifecycle.ESeamOff, "SEAM_API_KEY is not set: codewatch cannot call Seam's API")

func (o *Ops) requestDeletion(c echo.Context) error {
	return o.callSeam(c, http.StatusAccepted, "deletion_request",
		func(ctx context.Context, id, by string) (*lifecycle.AccessCode, bool, error) {
			return o.Seam.RequestDeletionWithin(ctx, id, by, o.seamWait())
		},
		func(id string) string {
			return "Seam has not answered the deletion request yet; it goes on in the background. " +
				"GET /v1/access_codes/" + id + " shows deletion_request once Seam has answered."
		})
}

func (o *Ops) reconcile(c echo.Context) error {
	return o.callSeam(c, http.StatusOK, "lookup",
		func(ctx context.Context, id, _ string) (*lifecycle.AccessCode, bool, error) {
			return o.Seam.ReconcileWithin(ctx, id, o.seamWait())
		},
		func(id string) string {
			return "The lookup in Seam's API has not finished; it goes on in the background. " +
				"GET /v1/access_codes/" + id + " shows its result under seam (polled_at, error)."
		})
}

// callSeam runs a call to Seam's API (SeamOps) for the route's code, by
// the token's name, and answers the code with status; 501 without Seam's
// API, 404 for a code codewatch does not know, and 202 (stillRunning,
// saying what and pending(id)) when the call has not finished within
// seamWait.
func (o *Ops) callSeam(c echo.Context, status int, what string,
	call func(ctx context.Context, id, by string) (*lifecycle.AccessCode, bool, error), pending func(id string) string) error {
	id := c.Param("access_code_id")
	if !ValidText(id) {
		return AccessCodeNotFound(id)
	}
	if o.Seam == nil {
		return errSeamOff
	}
	by, _ := c.Get("token_name").(string)
	code, done, err := call(c.Request().Context(), id, by)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return AccessCodeNotFound(id)
	}
	if err != nil {
		return err
	}
	if !done {
		return stillRunning(c, id, code, what, pending(id))
	}
	return c.JSON(status, map[string]any{"access_code": code, "ok": true})
}

// stillRunning answers 202 for a call to Seam's API that has not finished
// within the route's wait: the code as it stands, what is still running and where
// to look (also in Location).
func stillRunning(c echo.Context, id string, code *lifecycle.AccessCode, what, msg string) error {
	loc := "/v1/access_codes/" + url.PathEscape(id)
	c.Response().Header().Set(echo.HeaderLocation, loc)
	return c.JSON(http.StatusAccepted, map[string]any{"access_code": code, "ok": true,
		"in_progress": map[string]any{"what": what, "message": msg, "check": loc}})
}
