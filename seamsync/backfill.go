package seamsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/codewatch/codewatch/jobs"
	"github.com/codewatch/codewatch/lifecycle"
)

// MaxStartupBackfill bounds how far back serve's start-up backfill reads.
const MaxStartupBackfill = 7 * 24 * time.Hour

// startupOverlap is how far before the newest event Seam sent as a webhook
// the start-up backfill begins: events delivered out of order around an
// outage.
const startupOverlap = 15 * time.Minute

// BackfillResult counts what a backfill did with the events it read.
type BackfillResult struct {
	Read        int `json:"read"`
	Stored      int `json:"stored"`
	Duplicate   int `json:"duplicate"`
	Quarantined int `json:"quarantined"`
	// OtherWorkspace counts events of another workspace than the API key's,
	// left alone (Seam scopes events/list to the key's workspace; its fake
	// does not).
	OtherWorkspace int `json:"other_workspace"`
	// Through is the end of the last window read.
	Through time.Time `json:"through"`
}

// backfillWorkers is how many events of a window are stored at once (the
// store commits concurrent ones together).
const backfillWorkers = 8

// Backfill reads Seam's events created in [from, to] (events/list, in
// windows split while a page comes back full) and stores each through the
// webhook path with source "poll": an event already stored, received as a
// webhook or backfilled before, is a duplicate; one codewatch cannot use is
// quarantined. progress, when set, is told the totals after each window.
func (s *Service) Backfill(ctx context.Context, from, to time.Time, progress func(BackfillResult)) (BackfillResult, error) {
	var res BackfillResult
	var mu sync.Mutex
	err := s.cfg.Seam.ListEventsWindowed(ctx, from, to, 0, func(raw []json.RawMessage) error {
		work := make(chan json.RawMessage)
		var wg sync.WaitGroup
		var first error
		for i := 0; i < backfillWorkers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range work {
					if s.otherWorkspace(body) {
						mu.Lock()
						res.Read++
						res.OtherWorkspace++
						mu.Unlock()
						continue
					}
					r, err := s.cfg.Store.Ingest(ctx, backfillDelivery(body))
					mu.Lock()
					switch {
					case err != nil:
						if first == nil {
							first = err
						}
					case r.Outcome == lifecycle.Stored:
						res.Stored++
					case r.Outcome == lifecycle.Duplicate:
						res.Duplicate++
					case r.Outcome == lifecycle.Quarantined:
						res.Quarantined++
					}
					res.Read++
					mu.Unlock()
				}
			}()
		}
		for _, body := range raw {
			work <- body
		}
		close(work)
		wg.Wait()
		if first != nil {
			return first
		}
		if progress != nil {
			progress(res)
		}
		return nil
	})
	res.Through = to
	if err != nil {
		return res, seamErrorOrStore(err)
	}
	return res, nil
}

// otherWorkspace reports whether an event read from events/list belongs to
// another workspace than the API key's (when that is known): not the key's
// to backfill.
func (s *Service) otherWorkspace(body json.RawMessage) bool {
	ws := s.workspace.Load()
	if ws == nil {
		return false
	}
	var head struct {
		WorkspaceID string `json:"workspace_id"`
	}
	_ = json.Unmarshal(body, &head)
	return head.WorkspaceID != "" && head.WorkspaceID != ws.WorkspaceID
}

// seamErrorOrStore leaves the store's own errors as they are.
func seamErrorOrStore(err error) error {
	if lifecycle.ErrorCode(err) != "" {
		return err
	}
	return seamError(err)
}

// backfillDelivery is an event read from events/list as a delivery. Its
// message id names the event and the exact bytes: the same event read again
// is a duplicate by message id, and a webhook of it (another message id) a
// duplicate by event id.
func backfillDelivery(body json.RawMessage) lifecycle.Delivery {
	var head struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(body, &head)
	sum := sha256.Sum256(body)
	// The id is Seam's text: a cut inside a character or a NUL (JSON can
	// spell one) would make Postgres refuse the row, and the backfill with
	// it, even the quarantine that keeps an unusable event.
	id := lifecycle.CleanText(head.EventID, lifecycle.MaxIDLength)
	return lifecycle.Delivery{MessageID: lifecycle.BackfillMessagePrefix + id + "#" + hex.EncodeToString(sum[:8]), Body: body, Source: lifecycle.SourcePoll}
}

// StartupBackfill returns the job that backfills from shortly before the
// newest event Seam sent as a webhook (at most maxBack, itself at most
// MaxStartupBackfill, back) to now.
//
// Only webhooks say how far Seam's deliveries had reached. codewatch's own
// events are stamped with its own clock at each poll, so one made a minute
// ago would hide a day without webhooks. Seam's events that a backfill
// stored are not proof either: a backfill may have covered a slice of time
// (`codewatch backfill --between`), stopped part way (windows are stored
// several events at once), or met a window still full at its smallest size,
// so events older than its newest may be missing. Reading too far back costs
// only duplicates; reading too little hides an outage.
func (s *Service) StartupBackfill(ctx context.Context, maxBack time.Duration) (jobs.Backfill, error) {
	now := s.cfg.Now()
	from := now.Add(-min(maxBack, MaxStartupBackfill))
	newest, err := s.cfg.Store.NewestWebhookEvent(ctx)
	if err != nil {
		return jobs.Backfill{}, err
	}
	if newest != nil {
		// A time in the future (a skewed or hostile clock) counts as now,
		// so the window still reaches the overlap back.
		reached := *newest
		if reached.After(now) {
			reached = now
		}
		if reached.Add(-startupOverlap).After(from) {
			from = reached.Add(-startupOverlap)
		}
	}
	if !from.Before(now) { // maxBack <= 0
		from = now.Add(-startupOverlap)
	}
	return jobs.Backfill{From: from.Unix(), To: now.Unix() + 1}, nil
}

type backfillWorker struct {
	river.WorkerDefaults[jobs.Backfill]
	s *Service
}

func (w *backfillWorker) Work(ctx context.Context, job *river.Job[jobs.Backfill]) error {
	from, to := time.Unix(job.Args.From, 0), time.Unix(job.Args.To, 0)
	res, err := w.s.Backfill(ctx, from, to, nil)
	if err != nil {
		return fmt.Errorf("backfill %s..%s: %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	w.s.cfg.Logger.InfoContext(ctx, "backfill done", "from", from.UTC(), "to", to.UTC(), "read", res.Read,
		"stored", res.Stored, "duplicate", res.Duplicate, "quarantined", res.Quarantined)
	return nil
}

// Timeout lets a backfill of days of events run to its end.
func (w *backfillWorker) Timeout(*river.Job[jobs.Backfill]) time.Duration { return 30 * time.Minute }
