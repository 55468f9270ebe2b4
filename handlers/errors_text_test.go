package handlers_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

// Issue 19, point 10's sibling: an error answer may quote Seam's message or
// a job's error, which may hold a NUL or a broken character; the answer's
// message is plain text a client's JSON parser takes (no \u0000).
func TestErrorAnswerMessageIsCleanText(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = handlers.ErrorHandler(slog.New(slog.DiscardHandler))
	e.GET("/x", func(echo.Context) error {
		return &lifecycle.Error{Code: lifecycle.ESeam, Message: "Seam said \x00 then \xe2\x82", Err: errors.New("seam")}
	})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != http.StatusBadGateway || strings.Contains(rec.Body.String(), `\u0000`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var body struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.HasPrefix(body.Error.Message, "Seam said") ||
		!utf8.ValidString(body.Error.Message) {
		t.Fatalf("%s: %v", rec.Body, err)
	}
}
