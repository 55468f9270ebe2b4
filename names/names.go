// Package names keeps the names people use for codes and locks (issue 22):
// a code's name ("Guest: Smith, 5-8 Dec"), its lock's display_name
// ("Front door"), location ("12 Elm St") and time zone, from Seam's API
// (access_codes/get, devices/get), and without an API key a lock's custom
// metadata from the webhook bodies codewatch stored.
//
// The work is River jobs on their own queue (jobs.QueueNames, two workers),
// never part of ingest: a periodic scan queues a fetch for each code and
// lock seen for the first time (their names_checked_at NULL), a daily
// refresh queues one for every lock and live code, and each fetch waits for
// the names' own share of Seam's rate limit (a quarter of
// CODEWATCH_SEAM_RPS) before the Seam client's shared limit. An alert's
// delivery asks for its code's names (ForAlert) and, when they are still
// due, fetches them itself, waiting at most a bound (10 s).
//
// Seam forgets a code once it is deleted (access_codes/get answers 404): a
// code first seen finished has no name to learn, and codewatch's own
// deletion requests read the name first (seamsync).
package names

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"golang.org/x/time/rate"

	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seam"
)

// Store is what names asks of the store (postgres.Store).
type Store interface {
	CodesNamesDue(ctx context.Context, limit int) ([]lifecycle.CodeDue, error)
	DevicesNamesDue(ctx context.Context, limit int) ([]lifecycle.DeviceDue, error)
	LiveCodesAfter(ctx context.Context, ws string, after int64, limit int) ([]string, int64, error)
	DevicesAfter(ctx context.Context, ws string, after int64, limit int) ([]string, int64, error)
	SetCodeName(ctx context.Context, id string, name *string, at time.Time) error
	SettleCodeNames(ctx context.Context, ids []string, at time.Time) error
	SetDeviceNames(ctx context.Context, id string, n lifecycle.LockNames, at time.Time) error
	SetDeviceMetadata(ctx context.Context, id string, meta json.RawMessage, at time.Time) error
	SettleDeviceNames(ctx context.Context, ids []string, at time.Time) error
	CodeNames(ctx context.Context, id string) (lifecycle.Names, bool, error)
	DeviceMetadataFromBodies(ctx context.Context, deviceID string) (json.RawMessage, error)
}

// JobClient inserts River jobs (*river.Client[pgx.Tx]).
type JobClient interface {
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Config configures a Service.
type Config struct {
	// Seam is the API client; nil without SEAM_API_KEY: then only locks'
	// custom metadata from webhook bodies is learnt.
	Seam  *seam.Client
	Store Store
	Jobs  JobClient
	// Workspace is the API key's workspace id ("" while Seam has not said
	// it; seamsync.Service.Workspace). Only codes and locks of it are
	// looked up: codes of other workspaces are never asked about with the
	// key (docs/operations.md, The key's workspace).
	Workspace func() string
	// RPS is the names' share of Seam's rate limit (requests per second);
	// default a quarter of seam.DefaultRPS.
	RPS float64
	// ScanEvery is how often the scan for due names runs (default 5 s);
	// ScanBatch bounds the fetches one scan queues (default 200).
	ScanEvery time.Duration
	ScanBatch int
	// RefreshEvery is how often every name is fetched again (default 24 h;
	// negative: never).
	RefreshEvery time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Service fetches and keeps names.
type Service struct {
	cfg   Config
	limit *rate.Limiter
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.RPS <= 0 || math.IsNaN(cfg.RPS) {
		cfg.RPS = seam.DefaultRPS / 4
	}
	if cfg.ScanEvery <= 0 {
		cfg.ScanEvery = 5 * time.Second
	}
	if cfg.ScanBatch <= 0 {
		cfg.ScanBatch = 200
	}
	if cfg.RefreshEvery == 0 {
		cfg.RefreshEvery = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workspace == nil {
		cfg.Workspace = func() string { return "" }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, limit: rate.NewLimiter(rate.Limit(cfg.RPS), 1)}
}

// UseJobs sets the River client that queues fetches, when it is made after
// the Service.
func (s *Service) UseJobs(j JobClient) { s.cfg.Jobs = j }

// Register adds the names' workers to w.
func (s *Service) Register(w *river.Workers) {
	river.AddWorker(w, &codeWorker{s: s})
	river.AddWorker(w, &deviceWorker{s: s})
	river.AddWorker(w, &scanWorker{s: s})
	river.AddWorker(w, &refreshWorker{s: s})
}

// Periodic returns the scan (every ScanEvery) and the refresh (every
// RefreshEvery), run by the elected leader.
func (s *Service) Periodic() []*river.PeriodicJob {
	out := []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(s.cfg.ScanEvery),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.NamesScan{}, nil },
		&river.PeriodicJobOpts{ID: "names_scan", RunOnStart: true})}
	if s.cfg.RefreshEvery > 0 {
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(s.cfg.RefreshEvery),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.NamesRefresh{}, nil },
			&river.PeriodicJobOpts{ID: "names_refresh"}))
	}
	return out
}

// FetchCode reads a code's name from Seam and keeps it. A code Seam does
// not know (deleted, or of another workspace than the key's) is settled
// with the name codewatch has, if any. Without Seam's API it settles the
// code: there is nothing else to learn it from.
func (s *Service) FetchCode(ctx context.Context, id string) error {
	if s.cfg.Seam == nil {
		return s.cfg.Store.SettleCodeNames(ctx, []string{id}, s.cfg.Now())
	}
	if err := s.limit.Wait(ctx); err != nil {
		return err
	}
	ac, err := s.cfg.Seam.GetAccessCode(ctx, id)
	switch {
	case seam.IsNotFound(err):
		return s.cfg.Store.SettleCodeNames(ctx, []string{id}, s.cfg.Now())
	case err != nil:
		return err
	}
	return s.cfg.Store.SetCodeName(ctx, id, lifecycle.CleanName(ac.Name), s.cfg.Now())
}

// FetchDevice reads a lock's names from Seam and keeps them, with its
// custom metadata (Seam's, else a webhook body's). Without Seam's API, or
// for a lock Seam does not show this key, the webhook bodies' metadata is
// all there is.
func (s *Service) FetchDevice(ctx context.Context, id string) error {
	var dev *seam.Device
	if s.cfg.Seam != nil {
		if err := s.limit.Wait(ctx); err != nil {
			return err
		}
		var err error
		dev, err = s.cfg.Seam.GetDevice(ctx, id)
		if err != nil && !seam.IsNotFound(err) {
			return err
		}
	}
	now := s.cfg.Now()
	if dev == nil {
		meta, err := s.cfg.Store.DeviceMetadataFromBodies(ctx, id)
		if err != nil {
			return err
		}
		return s.cfg.Store.SetDeviceMetadata(ctx, id, meta, now)
	}
	n := lifecycle.LockNames{DeviceName: lifecycle.CleanName(dev.DisplayName), Provider: lifecycle.CleanName(dev.Properties.Manufacturer)}
	if n.DeviceName == nil {
		n.DeviceName = lifecycle.CleanName(dev.Properties.Name)
	}
	if dev.Location != nil {
		n.LocationName = lifecycle.CleanName(dev.Location.LocationName)
		if z := dev.Location.Zone(); len(z) <= 64 {
			n.TimeZone = lifecycle.CleanName(z)
		}
	}
	n.CustomMetadata = object(dev.CustomMetadata)
	if n.CustomMetadata == nil {
		meta, err := s.cfg.Store.DeviceMetadataFromBodies(ctx, id)
		if err != nil {
			return err
		}
		n.CustomMetadata = meta
	}
	return s.cfg.Store.SetDeviceNames(ctx, id, n, now)
}

// object keeps a non-empty JSON object that jsonb takes, nil otherwise.
func object(raw json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if len(raw) == 0 || len(raw) > 8192 || json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil
	}
	for _, c := range string(raw) {
		if c == 0 {
			return nil
		}
	}
	b, err := json.Marshal(m)
	if err != nil || len(b) > 8192 || containsNULEscape(b) {
		return nil
	}
	return b
}

func containsNULEscape(b []byte) bool {
	for i := 0; i+5 < len(b); i++ {
		if b[i] == '\\' && string(b[i+1:i+6]) == "u0000" {
			return true
		}
	}
	return false
}

// AlertWait bounds how long an alert's delivery waits for its code's names.
const AlertWait = 10 * time.Second

// ForAlert returns a code's names and its lock's for an alert's delivery.
// When they are still due (seen for the first time a moment ago) it
// fetches them now, for at most wait, and returns what it has by then: an
// alert goes out with its names when Seam answers in time, and without
// them otherwise.
func (s *Service) ForAlert(ctx context.Context, accessCodeID, deviceID, workspaceID string, wait time.Duration) (lifecycle.Names, error) {
	n, due, err := s.cfg.Store.CodeNames(ctx, accessCodeID)
	if err != nil || !due || s.cfg.Seam == nil {
		return n, err
	}
	if ws := s.cfg.Workspace(); ws == "" || ws != workspaceID {
		// Not the key's to ask about (or not known yet): the scan
		// settles it.
		return n, nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if n.AccessCodeName == nil {
		if err := s.FetchCode(wctx, accessCodeID); err != nil && wctx.Err() == nil {
			s.cfg.Logger.Debug("names: code not fetched for its alert", "access_code_id", accessCodeID, "error", err)
		}
	}
	if deviceID != "" && n.DeviceName == nil && n.LocationName == nil {
		if err := s.FetchDevice(wctx, deviceID); err != nil && wctx.Err() == nil {
			s.cfg.Logger.Debug("names: lock not fetched for its alert", "device_id", deviceID, "error", err)
		}
	}
	got, _, err := s.cfg.Store.CodeNames(context.WithoutCancel(ctx), accessCodeID)
	if err != nil {
		return n, nil
	}
	return got, nil
}

// Names returns a code's names as they stand (no fetch): for an adapter
// without Seam's API.
func (s *Service) Names(ctx context.Context, accessCodeID string) (lifecycle.Names, error) {
	n, _, err := s.cfg.Store.CodeNames(ctx, accessCodeID)
	return n, err
}

// Scan queues a fetch for each code and lock whose names are due, and
// settles at once the codes Seam has forgotten (finished before codewatch
// asked) and, without Seam's API, every due code.
func (s *Service) Scan(ctx context.Context) error {
	now := s.cfg.Now()
	ws := s.cfg.Workspace()
	if s.cfg.Seam != nil && ws == "" {
		// Until Seam says which workspace the key reaches, nothing is
		// asked (seamsync.WatchWorkspace retries).
		return nil
	}
	codes, err := s.cfg.Store.CodesNamesDue(ctx, s.cfg.ScanBatch)
	if err != nil {
		return err
	}
	var settle []string
	var params []river.InsertManyParams
	for _, c := range codes {
		if c.Finished || s.cfg.Seam == nil || c.WorkspaceID != ws {
			settle = append(settle, c.AccessCodeID)
			continue
		}
		params = append(params, river.InsertManyParams{Args: jobs.FetchCodeName{AccessCodeID: c.AccessCodeID},
			InsertOpts: &river.InsertOpts{Priority: jobs.PriorityFirstSight}})
	}
	if err := s.cfg.Store.SettleCodeNames(ctx, settle, now); err != nil {
		return err
	}
	devices, err := s.cfg.Store.DevicesNamesDue(ctx, s.cfg.ScanBatch)
	if err != nil {
		return err
	}
	var settleDevices []string
	for _, d := range devices {
		if s.cfg.Seam != nil && d.WorkspaceID != ws {
			settleDevices = append(settleDevices, d.DeviceID)
			continue
		}
		params = append(params, river.InsertManyParams{Args: jobs.FetchDeviceNames{DeviceID: d.DeviceID},
			InsertOpts: &river.InsertOpts{Priority: jobs.PriorityFirstSight}})
	}
	if err := s.cfg.Store.SettleDeviceNames(ctx, settleDevices, now); err != nil {
		return err
	}
	return s.insert(ctx, params)
}

func (s *Service) insert(ctx context.Context, params []river.InsertManyParams) error {
	if len(params) == 0 {
		return nil
	}
	if s.cfg.Jobs == nil {
		return errors.New("names: no job client")
	}
	_, err := s.cfg.Jobs.InsertMany(ctx, params)
	return err
}

// refreshChunk is how many fetches the refresh queues at once.
const refreshChunk = 500

// Refresh queues a fetch, behind the first sightings, for every lock and
// (with Seam's API) every live code.
func (s *Service) Refresh(ctx context.Context) (int, error) {
	queued := 0
	ws := s.cfg.Workspace()
	if s.cfg.Seam == nil || ws == "" {
		// Without Seam's API there is nothing new to learn; without the
		// key's workspace, nothing may be asked yet.
		return 0, nil
	}
	walk := func(next func(context.Context, string, int64, int) ([]string, int64, error), job func(string) river.JobArgs) error {
		for after := int64(0); ; {
			ids, last, err := next(ctx, ws, after, refreshChunk)
			if err != nil {
				return err
			}
			params := make([]river.InsertManyParams, len(ids))
			for i, id := range ids {
				params[i] = river.InsertManyParams{Args: job(id), InsertOpts: &river.InsertOpts{Priority: jobs.PriorityRefresh}}
			}
			if err := s.insert(ctx, params); err != nil {
				return err
			}
			queued += len(ids)
			if len(ids) < refreshChunk {
				return nil
			}
			after = last
		}
	}
	if err := walk(s.cfg.Store.DevicesAfter, func(id string) river.JobArgs { return jobs.FetchDeviceNames{DeviceID: id} }); err != nil {
		return queued, err
	}
	err := walk(s.cfg.Store.LiveCodesAfter, func(id string) river.JobArgs { return jobs.FetchCodeName{AccessCodeID: id} })
	return queued, err
}

// lastAttempt reports a job's final attempt: a fetch that fails then
// settles what it was for, so that the scan moves on and alerts stop
// waiting for it.
func lastAttempt(job *rivertype.JobRow) bool { return job.Attempt >= job.MaxAttempts }

// settleLast returns a fetch's error, unless it failed on the job's last
// attempt: then the failure is logged and id settled (nameless until the
// daily refresh).
func (s *Service) settleLast(ctx context.Context, job *rivertype.JobRow, err error, msg, key, id string,
	settle func(context.Context, []string, time.Time) error) error {
	if err == nil || !lastAttempt(job) {
		return err
	}
	s.cfg.Logger.Warn(msg, key, id, "error", err)
	return settle(context.WithoutCancel(ctx), []string{id}, s.cfg.Now())
}

type codeWorker struct {
	river.WorkerDefaults[jobs.FetchCodeName]
	s *Service
}

func (w *codeWorker) Work(ctx context.Context, job *river.Job[jobs.FetchCodeName]) error {
	return w.s.settleLast(ctx, job.JobRow, w.s.FetchCode(ctx, job.Args.AccessCodeID),
		"names: code's name not fetched; given up until the daily refresh", "access_code_id", job.Args.AccessCodeID,
		w.s.cfg.Store.SettleCodeNames)
}

// Timeout lets a fetch wait for the names' share of the rate limit and
// Seam's retries.
func (w *codeWorker) Timeout(*river.Job[jobs.FetchCodeName]) time.Duration { return fetchTimeout }

type deviceWorker struct {
	river.WorkerDefaults[jobs.FetchDeviceNames]
	s *Service
}

func (w *deviceWorker) Work(ctx context.Context, job *river.Job[jobs.FetchDeviceNames]) error {
	return w.s.settleLast(ctx, job.JobRow, w.s.FetchDevice(ctx, job.Args.DeviceID),
		"names: lock's names not fetched; given up until the daily refresh", "device_id", job.Args.DeviceID,
		w.s.cfg.Store.SettleDeviceNames)
}

// Timeout: as codeWorker's.
func (w *deviceWorker) Timeout(*river.Job[jobs.FetchDeviceNames]) time.Duration { return fetchTimeout }

type scanWorker struct {
	river.WorkerDefaults[jobs.NamesScan]
	s *Service
}

func (w *scanWorker) Work(ctx context.Context, _ *river.Job[jobs.NamesScan]) error {
	return w.s.Scan(ctx)
}

type refreshWorker struct {
	river.WorkerDefaults[jobs.NamesRefresh]
	s *Service
}

func (w *refreshWorker) Work(ctx context.Context, _ *river.Job[jobs.NamesRefresh]) error {
	n, err := w.s.Refresh(ctx)
	if n > 0 {
		w.s.cfg.Logger.Info("names: daily refresh queued", "fetches", n)
	}
	return err
}

// Timeout lets the refresh queue a large portfolio's fetches (a chunk
// of 500 at a time).
func (w *refreshWorker) Timeout(*river.Job[jobs.NamesRefresh]) time.Duration { return fetchTimeout }

// fetchTimeout bounds a names job: inside the 90 s after which River
// hands a job still running to another replica.
const fetchTimeout = 80 * time.Second
