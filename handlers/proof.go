package handlers

// Signed deletion records (issue 22): GET /v1/access_codes/{id}/proof and
// GET /v1/proof/public_key.

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Proofs signs deletion records (cmd/codewatch, over package proof), with
// the first key of CODEWATCH_SIGNING_KEY.
type Proofs interface {
	// SignedRecord is the code's signed deletion record as the route
	// answers it: {"ok":true,"proof":{...},"signature":{...}}, the proof's
	// bytes exactly those signed. ENotFound for a code codewatch does not
	// know.
	SignedRecord(ctx context.Context, id string) ([]byte, error)
	// PublicKey is the signing key's id and public half (standard padded
	// base64 of its 32 raw bytes).
	PublicKey() (keyID, publicKey string)
}

// signingOff answers the proof routes without CODEWATCH_SIGNING_KEY.
func signingOff() *APIError {
	return NewError(http.StatusNotImplemented, "signing_key_not_configured",
		"CODEWATCH_SIGNING_KEY is not set: codewatch cannot sign deletion records (codewatch keys generate --signing makes a key)")
}

func (o *Ops) proof(c echo.Context) error {
	if o.Proofs == nil {
		return signingOff()
	}
	id := c.Param("access_code_id")
	if !ValidText(id) {
		return AccessCodeNotFound(id)
	}
	b, err := o.Proofs.SignedRecord(c.Request().Context(), id)
	if err != nil {
		if ae := AsAPIError(err); ae.Type == "not_found" {
			return AccessCodeNotFound(id)
		}
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

func (o *Ops) publicKey(c echo.Context) error {
	if o.Proofs == nil {
		return signingOff()
	}
	id, pub := o.Proofs.PublicKey()
	return c.JSON(http.StatusOK, map[string]any{"key_id": id, "public_key": pub, "ok": true})
}
