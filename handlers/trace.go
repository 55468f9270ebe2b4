package handlers

import (
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// TraceRoutes names each request's server span (telemetry.Handler starts
// it) by its method and route template, "POST
// /v1/access_codes/:access_code_id/delete", never by the path with its ids,
// and sets http.route. Added only with tracing on.
func TraceRoutes(e *echo.Echo) {
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if span := trace.SpanFromContext(c.Request().Context()); span.IsRecording() {
				route := c.Path()
				span.SetName(c.Request().Method + " " + route)
				span.SetAttributes(attribute.String("http.route", route))
			}
			return next(c)
		}
	})
}
