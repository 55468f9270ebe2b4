// Package metrics holds codewatch's Prometheus metrics. Counters are updated
// by the code that sees each event; the state gauges are read from the
// database at scrape time, so every replica reports the same, true numbers.
package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// Metrics is the set of codewatch metrics on one registry.
type Metrics struct {
	Registry          *prometheus.Registry
	WebhooksReceived  *prometheus.CounterVec
	SignatureFailures *prometheus.CounterVec
	Quarantined       *prometheus.CounterVec
	IngestDuration    prometheus.Histogram
	AlertsSent        *prometheus.CounterVec
	AlertsFailed      *prometheus.CounterVec
	AlertsGivenUp     *prometheus.CounterVec
	JobErrors         *prometheus.CounterVec
	UnverifiedBytes   prometheus.Gauge
	SweepDuration     prometheus.Histogram
	OverdueFlagged    prometheus.Counter
	Flagged           *prometheus.CounterVec
	RetentionDeleted  *prometheus.CounterVec
	// IngestLag is Seam's occurred_at to the event stored (webhooks).
	IngestLag prometheus.Histogram
	// SeamRequests and SeamDuration count and time the attempts of calls
	// to Seam's API by route and outcome (seam.Outcome).
	SeamRequests *prometheus.CounterVec
	SeamDuration *prometheus.HistogramVec
	// AlertDeliveries counts delivery attempts by sink and outcome (sent,
	// failed, given_up).
	AlertDeliveries *prometheus.CounterVec
}

// New registers the metrics, with process and Go runtime collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		WebhooksReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_webhooks_received_total",
			Help: "Webhook deliveries by event type and outcome (stored, duplicate, quarantined, rejected, unavailable, overloaded, too_large).",
		}, []string{"event_type", "outcome"}),
		SignatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_signature_failures_total",
			Help: "Deliveries rejected for their signature, by reason.",
		}, []string{"reason"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_quarantined_total",
			Help: "Verified deliveries stored in quarantine, by reason.",
		}, []string{"reason"}),
		IngestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "codewatch_ingest_duration_seconds",
			Help:    "Time from a verified delivery to its committed answer.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .03, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		AlertsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_alerts_sent_total",
			Help: "Alerts delivered, by sink and type.",
		}, []string{"sink", "type"}),
		AlertsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_alerts_failed_total",
			Help: "Failed alert delivery attempts, by sink (retried until CODEWATCH_ALERT_MAX_AGE).",
		}, []string{"sink"}),
		AlertsGivenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_alerts_given_up_total",
			Help: "Alert deliveries given up (retried for CODEWATCH_ALERT_MAX_AGE, or to a sink no longer configured), by sink.",
		}, []string{"sink"}),
		JobErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_job_errors_total",
			Help: "Failed attempts of background jobs, by kind (River retries them).",
		}, []string{"kind"}),
		UnverifiedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codewatch_unverified_body_bytes",
			Help: "Bytes held by webhook bodies not yet verified (bounded by CODEWATCH_UNVERIFIED_BUDGET).",
		}),
		SweepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "codewatch_sweep_duration_seconds",
			Help: "Time one overdue sweep takes.",
		}),
		OverdueFlagged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codewatch_overdue_flagged_total",
			Help: "Deletions flagged removal_overdue by this process (by the sweeper or when a late event arrived).",
		}),
		Flagged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_flagged_total",
			Help: "Access codes newly flagged for troubleshooting by this process, by reason.",
		}, []string{"reason"}),
		RetentionDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codewatch_retention_deleted_total",
			Help: "Rows pruned by retention, by table.",
		}, []string{"table"}),
	}
	m.addCharted()
	r.MustRegister(m.WebhooksReceived, m.SignatureFailures, m.Quarantined, m.IngestDuration,
		m.AlertsSent, m.AlertsFailed, m.AlertsGivenUp, m.JobErrors, m.UnverifiedBytes, m.SweepDuration, m.OverdueFlagged, m.Flagged, m.RetentionDeleted,
		m.IngestLag, m.SeamRequests, m.SeamDuration, m.AlertDeliveries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.zeroKnown()
	return m
}

// EventTypeLabel bounds the label's values: the event types Seam has (its
// own list), "unknown" for none, and "other" for anything else a signed body
// may say, so that no sender can make new series.
func EventTypeLabel(t string) string {
	switch {
	case t == "":
		return "unknown"
	case seam.KnownEventType(t):
		return t
	}
	return "other"
}

// Summarizer reads the state of all codes (lifecycle.Store does).
type Summarizer interface {
	Summarize(ctx context.Context) (*lifecycle.StatusSummary, error)
}

// RegisterState adds the gauges read from the database at scrape time,
// cached for ttl so frequent scrapes by several Prometheus servers cost one
// query set.
func (m *Metrics) RegisterState(s Summarizer, ttl time.Duration, logger *slog.Logger) {
	m.Registry.MustRegister(&stateCollector{s: s, ttl: ttl, logger: logger})
}

var (
	descCodes = prometheus.NewDesc("codewatch_access_codes",
		"Tracked access codes per deletion_state.", []string{"deletion_state"}, nil)
	descTrouble = prometheus.NewDesc("codewatch_needs_troubleshooting",
		"Access codes that need troubleshooting, per reason.", []string{"reason"}, nil)
	descOldest = prometheus.NewDesc("codewatch_oldest_unconfirmed_deletion_age_seconds",
		"Age of the oldest deletion not yet confirmed off the lock (0 when none).", nil, nil)
	descOutbox = prometheus.NewDesc("codewatch_outbox_depth",
		"Alert deliveries not yet made.", nil, nil)
	descLast = prometheus.NewDesc("codewatch_last_webhook_received_timestamp_seconds",
		"Unix time the newest stored event was received (0 when none).", nil, nil)
	descUsed = prometheus.NewDesc("codewatch_codes_used_after_deletion_24h",
		"Access codes the lock was unlocked with after their deletion, in the last 24 hours.", nil, nil)
	descOfflineLocks = prometheus.NewDesc("codewatch_locks_offline_with_unconfirmed_deletions",
		"Offline locks with access codes whose deletion is unconfirmed.", nil, nil)
	descUp = prometheus.NewDesc("codewatch_database_up",
		"1 when the state gauges could be read from the database.", nil, nil)
)

type stateCollector struct {
	s      Summarizer
	ttl    time.Duration
	logger *slog.Logger

	mu   sync.Mutex
	at   time.Time
	last *lifecycle.StatusSummary
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCodes, descTrouble, descOldest, descOutbox, descLast, descUsed, descOfflineLocks, descUp} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || time.Since(c.at) > c.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sum, err := c.s.Summarize(ctx)
		cancel()
		if err != nil {
			if c.logger != nil {
				c.logger.Warn("metrics: cannot read state", "error", err)
			}
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
			return
		}
		c.last, c.at = sum, time.Now()
	}
	sum := c.last
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	for _, st := range lifecycle.States {
		ch <- prometheus.MustNewConstMetric(descCodes, prometheus.GaugeValue, float64(sum.DeletionStates[st]), string(st))
	}
	for _, r := range lifecycle.Reasons {
		ch <- prometheus.MustNewConstMetric(descTrouble, prometheus.GaugeValue, float64(sum.ByReason[r]), r)
	}
	var age float64
	if sum.OldestUnconfirmedDeletionAgeSeconds != nil {
		age = float64(*sum.OldestUnconfirmedDeletionAgeSeconds)
	}
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(sum.OutboxDepth))
	var last float64
	if sum.LastEventReceivedAt != nil {
		last = float64(sum.LastEventReceivedAt.Unix())
	}
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descUsed, prometheus.GaugeValue, float64(sum.CodesUsedAfterDeletion24h))
	ch <- prometheus.MustNewConstMetric(descOfflineLocks, prometheus.GaugeValue, float64(sum.LocksOfflineWithUnconfirmedDeletions))
}
