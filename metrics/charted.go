package metrics

// The metrics the Grafana dashboard (deploy/grafana/) charts beyond the
// first ones, and the series made at start-up: a labelled series appears in
// /metrics only once it has a value, so every one the dashboard (and an
// alert rule) reads is made at zero here, before its first event.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// WebhookOutcomes are the outcome label's values of
// codewatch_webhooks_received_total.
var WebhookOutcomes = []string{"stored", "duplicate", "quarantined", "rejected", "unavailable", "overloaded", "too_large"}

// DeliveryOutcomes are the outcome label's values of
// codewatch_alert_deliveries_total.
var DeliveryOutcomes = []string{"sent", "failed", "given_up"}

// QuarantineKinds are the quarantine reasons (codewatch_quarantined_total's
// reason label) made at zero: the ones any body can hit. Reasons naming a
// field (missing_device_id, invalid_occurred_at, ...) appear when first
// counted.
var QuarantineKinds = []string{"not_json", "missing_event_id", "missing_access_code_id",
	lifecycle.QuarantineMessageIDReused, "reserved_event_type"}

// JobStates are the state label's values of codewatch_jobs: River's states
// of a job not yet finished, and discarded (given up after its attempts).
var JobStates = []string{"available", "pending", "scheduled", "retryable", "running", "discarded"}

func (m *Metrics) addCharted() {
	m.IngestLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "codewatch_ingest_lag_seconds",
		Help:    "Time from when Seam says an event occurred (occurred_at) to when codewatch stored it, for webhooks.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600},
	})
	m.SeamRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "codewatch_seam_requests_total",
		Help: "Attempts of calls to Seam's API, by route and outcome (ok, not_found, client_error, rate_limited, server_error, transport_error, invalid_answer).",
	}, []string{"route", "outcome"})
	m.SeamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "codewatch_seam_request_duration_seconds",
		Help:    "Duration of one attempt of a call to Seam's API, by route and outcome.",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "outcome"})
	m.AlertDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "codewatch_alert_deliveries_total",
		Help: "Alert delivery attempts, by sink and outcome (sent, failed: retried, given_up).",
	}, []string{"sink", "outcome"})
}

// zeroKnown makes the series whose labels New knows.
func (m *Metrics) zeroKnown() {
	for _, o := range WebhookOutcomes {
		m.WebhooksReceived.WithLabelValues("unknown", o)
	}
	for _, t := range seam.EventTypes() {
		if len(t) > 12 && t[:12] == "access_code." {
			m.WebhooksReceived.WithLabelValues(t, "stored")
			m.WebhooksReceived.WithLabelValues(t, "duplicate")
		}
	}
	for _, r := range lifecycle.Reasons {
		m.Flagged.WithLabelValues(r)
	}
	for _, k := range QuarantineKinds {
		m.Quarantined.WithLabelValues(k)
	}
	for _, route := range seam.Routes {
		for _, o := range seam.Outcomes {
			m.SeamRequests.WithLabelValues(route, o)
			m.SeamDuration.WithLabelValues(route, o)
		}
	}
}

// Labels are the label values only the service knows: its sinks, the kinds
// of job, the reasons a signature is refused.
type Labels struct {
	Sinks            []string
	JobKinds         []string
	SignatureReasons []string
}

// Prepare makes, at zero, every series of l's labels.
func (m *Metrics) Prepare(l Labels) {
	for _, s := range l.Sinks {
		for _, o := range DeliveryOutcomes {
			m.AlertDeliveries.WithLabelValues(s, o)
		}
		for _, t := range []string{lifecycle.AlertTrouble, lifecycle.AlertReminder, lifecycle.AlertResolved} {
			m.AlertsSent.WithLabelValues(s, t)
		}
		m.AlertsFailed.WithLabelValues(s)
		m.AlertsGivenUp.WithLabelValues(s)
	}
	for _, k := range l.JobKinds {
		m.JobErrors.WithLabelValues(k)
	}
	for _, r := range l.SignatureReasons {
		m.SignatureFailures.WithLabelValues(r)
	}
}

// JobCounter counts River's jobs by kind and state (postgres.Store does).
type JobCounter interface {
	JobCounts(ctx context.Context, states []string) (map[[2]string]int64, error)
}

var descJobs = prometheus.NewDesc("codewatch_jobs",
	"Background jobs by kind and state (River's jobs not yet finished, and those discarded), read from the database.",
	[]string{"kind", "state"}, nil)

// RegisterJobs adds codewatch_jobs, read from the database at scrape time
// and cached for ttl, every kind and state at zero included.
func (m *Metrics) RegisterJobs(s JobCounter, kinds []string, ttl time.Duration, logger *slog.Logger) {
	m.Registry.MustRegister(&jobsCollector{s: s, kinds: kinds, ttl: ttl, logger: logger})
}

type jobsCollector struct {
	s      JobCounter
	kinds  []string
	ttl    time.Duration
	logger *slog.Logger

	mu   sync.Mutex
	at   time.Time
	last map[[2]string]int64
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descJobs }

func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || time.Since(c.at) > c.ttl {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := c.s.JobCounts(ctx, JobStates)
		cancel()
		if err != nil {
			if c.logger != nil {
				c.logger.Warn("metrics: cannot count jobs", "error", err)
			}
			return // codewatch_database_up says why
		}
		c.last, c.at = counts, time.Now()
	}
	seen := map[[2]string]bool{}
	for _, k := range c.kinds {
		for _, st := range JobStates {
			key := [2]string{k, st}
			seen[key] = true
			ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(c.last[key]), k, st)
		}
	}
	for key, n := range c.last {
		if !seen[key] {
			ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n), key[0], key[1])
		}
	}
}
