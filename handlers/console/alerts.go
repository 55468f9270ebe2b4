package console

// The alert outbox, and a code's alerts with their deliveries.

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

type alertsData struct {
	Status, Sink string
	Counts       map[string]int64
	Oldest       *time.Time
	Tabs         []tabView
	Deliveries   []lifecycle.AlertDelivery
	Next         string
}

func (k *console) alerts(c echo.Context) error {
	f := lifecycle.DeliveryFilter{Status: c.QueryParam("status"), Sink: c.QueryParam("sink"), Limit: 100}
	switch f.Status {
	case "", lifecycle.DeliveryPending, lifecycle.DeliverySent, lifecycle.DeliveryGivenUp:
	default:
		return handlers.InvalidParam("status", "must be pending, sent or given_up")
	}
	if !handlers.ValidText(f.Sink) {
		return handlers.InvalidParam("sink", "must be a sink's name")
	}
	if v := c.QueryParam("cursor"); v != "" {
		raw, err := b64.DecodeString(v)
		alertID, sink, ok := strings.Cut(string(raw), "/")
		if err != nil || !ok || !uuidLike(alertID) || !handlers.ValidText(sink) {
			return handlers.InvalidParam("cursor", "not a cursor made by this page")
		}
		f.Before = &lifecycle.DeliveryCursor{AlertID: alertID, Sink: sink}
	}
	ctx := c.Request().Context()
	counts, oldest, err := k.Store.CountDeliveries(ctx)
	if err != nil {
		return err
	}
	list, next, err := k.Store.ListDeliveries(ctx, f)
	if err != nil {
		return err
	}
	d := alertsData{Status: f.Status, Sink: f.Sink, Counts: counts, Oldest: oldest, Deliveries: list}
	var total int64
	for _, n := range counts {
		total += n
	}
	d.Tabs = []tabView{{"", "All", total}}
	for _, s := range deliveryStatuses {
		d.Tabs = append(d.Tabs, tabView{s, deliveryLabel(s), counts[s]})
	}
	if next != nil {
		d.Next = withQuery("/alerts", nil, "cursor", b64.EncodeToString([]byte(next.AlertID+"/"+next.Sink)),
			"status", f.Status, "sink", f.Sink)
	}
	return k.render(c, http.StatusOK, "alerts", k.page(c, "Alerts", "alerts", true, d))
}

func uuidLike(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", r):
			return false
		}
	}
	return true
}

// tabView is one status tab of the alerts page.
type tabView struct {
	Status, Label string
	N             int64
}

// alertView is one alert of a code, with its deliveries.
type alertView struct {
	AlertID, Type, Message string
	Sequence               int64
	CreatedAt              time.Time
	Deliveries             []lifecycle.AlertDelivery
}

func alertViews(ds []lifecycle.AlertDelivery) []alertView {
	var out []alertView
	for _, d := range ds {
		if n := len(out); n == 0 || out[n-1].AlertID != d.AlertID {
			var p struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(d.Payload, &p)
			out = append(out, alertView{AlertID: d.AlertID, Type: d.Type, Message: p.Message, Sequence: d.Sequence, CreatedAt: d.CreatedAt})
		}
		out[len(out)-1].Deliveries = append(out[len(out)-1].Deliveries, d)
	}
	return out
}

var alertLabels = map[string]string{
	lifecycle.AlertTrouble:  "Needs troubleshooting",
	lifecycle.AlertResolved: "Resolved",
	lifecycle.AlertReminder: "Reminder",
}

func alertLabel(t string) string { return label(alertLabels, t) }

// deliveryStatuses are the alerts page's tabs after "All", in order.
var deliveryStatuses = []string{lifecycle.DeliveryPending, lifecycle.DeliverySent, lifecycle.DeliveryGivenUp}

var deliveryLabels = map[string]string{
	lifecycle.DeliveryPending: "Pending",
	lifecycle.DeliverySent:    "Delivered",
	lifecycle.DeliveryGivenUp: "Given up",
}

func deliveryLabel(s string) string { return label(deliveryLabels, s) }
