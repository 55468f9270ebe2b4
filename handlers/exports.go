package handlers

// Exports (issue 22): GET /v1/exports/deletions streams one row per deleted
// code, as CSV (RFC 4180) or JSON lines; `codewatch export` writes the same.

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

// ExportStore reads an export chunk by chunk (postgres.Store).
type ExportStore interface {
	ExportDeletions(ctx context.Context, f lifecycle.ExportFilter, after *lifecycle.ExportCursor, limit int) ([]lifecycle.DeletionRow, *lifecycle.ExportCursor, error)
}

// ExportColumns are the export's columns, in order (the CSV header).
var ExportColumns = []string{"access_code_id", "access_code_name", "device_id", "device_name", "location_name",
	"workspace_id", "deleted_at", "confirmed_at", "confirmed_by", "deletion_state", "troubleshooting_reasons", "acknowledged_by"}

// Export formats.
const (
	ExportCSV   = "csv"
	ExportJSONL = "jsonl"
)

// exportChunk is how many rows one read of an export returns.
const exportChunk = 1000

// ParseExportTime reads since/until: RFC 3339, or a date (midnight UTC).
func ParseExportTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return time.Time{}, InvalidParam(name, "must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)")
}

// WriteExport streams the export of f to w in format, chunk by chunk: its
// memory is one chunk's, whatever the number of rows. first, when given, is
// the first chunk already read (so that a failure to read it can still be
// answered as an error).
func WriteExport(ctx context.Context, w io.Writer, s ExportStore, f lifecycle.ExportFilter, format string,
	first []lifecycle.DeletionRow, next *lifecycle.ExportCursor, read bool) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var cw *csv.Writer
	if format == ExportCSV {
		cw = csv.NewWriter(bw)
		cw.UseCRLF = true // RFC 4180
		if err := cw.Write(ExportColumns); err != nil {
			return err
		}
	}
	rows := first
	for {
		if !read {
			var err error
			if rows, next, err = s.ExportDeletions(ctx, f, next, exportChunk); err != nil {
				return err
			}
		}
		read = false
		for i := range rows {
			var err error
			if cw != nil {
				err = cw.Write(csvRecord(&rows[i]))
			} else {
				err = writeJSONLine(bw, &rows[i])
			}
			if err != nil {
				return err
			}
		}
		if cw != nil {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if next == nil {
			return nil
		}
	}
}

func writeJSONLine(w io.Writer, r *lifecycle.DeletionRow) error {
	if r.TroubleshootingReasons == nil {
		r.TroubleshootingReasons = []string{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// csvRecord is a row's cells. A reason list is joined with "; ".
func csvRecord(r *lifecycle.DeletionRow) []string {
	t := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return p.UTC().Format(time.RFC3339Nano)
	}
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	cells := []string{r.AccessCodeID, s(r.AccessCodeName), s(r.DeviceID), s(r.DeviceName), s(r.LocationName),
		s(r.WorkspaceID), t(r.DeletedAt), t(r.ConfirmedAt), s(r.ConfirmedBy), string(r.DeletionState),
		strings.Join(r.TroubleshootingReasons, "; "), s(r.AcknowledgedBy)}
	for i, c := range cells {
		cells[i] = NeutralizeCell(c)
	}
	return cells
}

// NeutralizeCell keeps a spreadsheet from reading a cell as a formula (CSV
// injection: names come from Seam, typed by anyone): a cell starting with
// =, +, -, @, a tab or a carriage return gets a leading '.
func NeutralizeCell(c string) string {
	if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
		return "'" + c
	}
	return c
}

var exportParams = []string{"since", "until", "format"}

func (o *Ops) exportDeletions(c echo.Context) error {
	q, err := queryOf(c, exportParams...)
	if err != nil {
		return err
	}
	var f lifecycle.ExportFilter
	if f.Since, err = ParseExportTime("since", q.Get("since")); err != nil {
		return err
	}
	if f.Until, err = ParseExportTime("until", q.Get("until")); err != nil {
		return err
	}
	format := q.Get("format")
	switch format {
	case "":
		format = ExportCSV
	case ExportCSV, ExportJSONL:
	default:
		return InvalidParam("format", "must be csv or jsonl")
	}
	es, ok := o.Store.(ExportStore)
	if !ok {
		return fmt.Errorf("store cannot export")
	}
	ctx := c.Request().Context()
	// The first chunk before the answer's status: a database that cannot
	// answer is a 503, not a cut stream.
	rows, next, err := es.ExportDeletions(ctx, f, nil, exportChunk)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	name := "deletions." + format
	if format == ExportCSV {
		h.Set(echo.HeaderContentType, "text/csv; charset=utf-8; header=present")
	} else {
		h.Set(echo.HeaderContentType, "application/x-ndjson")
	}
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Response().WriteHeader(http.StatusOK)
	if err := WriteExport(ctx, c.Response(), es, f, format, rows, next, true); err != nil {
		// Mid-stream: the status is sent; cutting the connection tells
		// the client the export is incomplete.
		o.Logger.Warn("export cut short", "error", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
