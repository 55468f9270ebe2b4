package console

// The printable "Deletion record" of a code (issue 22): the same content as
// GET /v1/access_codes/{id}/proof, for a person to print (or save as PDF),
// with a link to the signed JSON.

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

type recordData struct {
	Record *lifecycle.DeletionRecord
	URL    string
	Lock   string
	// Signed says whether the signed JSON can be had (CODEWATCH_SIGNING_KEY).
	Signed bool
	KeyID  string
}

func (k *console) record(c echo.Context) error {
	id := c.Param("access_code_id")
	if !handlers.ValidText(id) {
		return handlers.AccessCodeNotFound(id)
	}
	r, err := k.Store.DeletionRecord(c.Request().Context(), id)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return handlers.AccessCodeNotFound(id)
	}
	if err != nil {
		return err
	}
	d := recordData{Record: r, URL: codeURL(id), Lock: lifecycle.LockLabel(r.DeviceName, r.LocationName), Signed: k.proofs != nil}
	if k.proofs != nil {
		d.KeyID, _ = k.proofs.PublicKey()
	}
	return k.render(c, http.StatusOK, "record", k.page(c, "Deletion record "+id, "codes", false, d))
}

// recordJSON is the signed record, as the API answers it, to download.
func (k *console) recordJSON(c echo.Context) error {
	id := c.Param("access_code_id")
	if k.proofs == nil {
		return handlers.NewError(http.StatusNotImplemented, "signing_key_not_configured",
			"CODEWATCH_SIGNING_KEY is not set: codewatch cannot sign deletion records")
	}
	if !handlers.ValidText(id) {
		return handlers.AccessCodeNotFound(id)
	}
	b, err := k.proofs.SignedRecord(c.Request().Context(), id)
	if lifecycle.ErrorCode(err) == lifecycle.ENotFound {
		return handlers.AccessCodeNotFound(id)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="deletion-record.json"`)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}
