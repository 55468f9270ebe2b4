package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/internal/storetest"
	"github.com/codewatch/codewatch/jobs"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type oddErrorArgs struct{}

func (oddErrorArgs) Kind() string { return "test_odd_error" }

type oddErrorWorker struct {
	river.WorkerDefaults[oddErrorArgs]
}

// Work fails as a job can when it passes on what another system said.
func (oddErrorWorker) Work(context.Context, *river.Job[oddErrorArgs]) error {
	return errors.New("Seam said \x00 then \xff\xfe")
}

// Defect (issue 19, point 10's sibling): River records a failed attempt's
// error in the job's errors (jsonb), which refuses the NUL a job's error
// may carry from outside (a sink's answer, Seam's message): the record
// failed and the job stayed running until rescued. Now every job's error is
// stored as text Postgres takes.
func TestJobErrorsAreRecordedWhateverTheirText(t *testing.T) {
	pool := pgtest.New(t)
	w := river.NewWorkers()
	river.AddWorker(w, oddErrorWorker{})
	c := storetest.Start(t, pool, w)
	res, err := c.Insert(context.Background(), oddErrorArgs{}, &river.InsertOpts{Queue: jobs.QueueMaintenance, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		j, err := c.JobGet(context.Background(), res.Job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == rivertype.JobStateDiscarded {
			if len(j.Errors) != 1 || !strings.Contains(j.Errors[0].Error, "Seam said") ||
				!utf8.ValidString(j.Errors[0].Error) || strings.ContainsRune(j.Errors[0].Error, 0) {
				t.Fatalf("errors %+v", j.Errors)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s: its error was not recorded", j.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
