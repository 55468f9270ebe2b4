package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// BenchmarkConsolePages renders the console's busiest pages, and reads the
// API's lists, over a database of 10,000 codes: 9,000 removed, 800 awaiting
// removal, 200 whose removal failed (all on the triage page), each with its
// events and alerts.
//
//	pg_virtualenv -t go test -run '^$' -bench ConsolePages -benchtime 200x ./handlers
func BenchmarkConsolePages(b *testing.B) {
	e := newConsoleEnv(b, console.Console{})
	ctx := context.Background()
	ingest := func(typ, code string, ago time.Duration) {
		body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: code, DeviceID: "dev-" + code[:2],
			OccurredAt: e.clock.Now().Add(-ago)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.store.Ingest(ctx, lifecycle.Delivery{MessageID: seamevent.NewMessageID(), Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	var troubled string
	var wg sync.WaitGroup
	ids := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Go(func() {
			for i := range ids {
				code := fmt.Sprintf("%02x-%s", i%256, seamevent.NewID())
				switch {
				case i < 9000:
					ingest(lifecycle.TypeSetOnDevice, code, 3*time.Hour)
					ingest(lifecycle.TypeDeleted, code, 2*time.Hour)
					ingest(lifecycle.TypeRemovedFromDevice, code, time.Hour)
				case i < 9800:
					ingest(lifecycle.TypeDeleted, code, time.Duration(i%25)*time.Minute)
				default:
					ingest(lifecycle.TypeSetOnDevice, code, 3*time.Hour)
					ingest(lifecycle.TypeDeleted, code, time.Duration(i%60)*time.Minute)
					ingest(lifecycle.TypeFailedToRemove, code, 0)
					troubled = code
				}
			}
		})
	}
	for i := 0; i < 10000; i++ {
		ids <- i
	}
	close(ids)
	wg.Wait()
	c := e.client()
	c.signIn(aliceToken)
	for name, path := range map[string]string{
		"triage":       "/console/",
		"code":         "/console/codes/" + troubled,
		"codes":        "/console/codes?state=awaiting_removal",
		"alerts":       "/console/alerts",
		"live-triage":  "/console/",
		"api-list":     "/v1/access_codes?needs_troubleshooting=true",
		"api-awaiting": "/v1/access_codes?deletion_state=awaiting_removal",
	} {
		b.Run(name, func(b *testing.B) {
			header := []string{}
			switch name {
			case "live-triage":
				header = []string{"X-Codewatch-Live", "1"}
			case "api-list", "api-awaiting":
				header = []string{"Authorization", "Bearer " + aliceToken}
			}
			for b.Loop() {
				if r := c.get(path, header...); r.Status != http.StatusOK {
					b.Fatalf("%s: %d", path, r.Status)
				}
			}
		})
	}
}
