package handlers_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/migrations"
	"github.com/codewatch/codewatch/seamevent"
)

// The database goes away mid-run: deliveries get 503 (Seam retries), never a
// 2xx for an event not stored, and the service recovers on its own.
func TestWebhookDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own Postgres")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "codewatch-outage-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	srv, err := localpg.Start(ctx, dir, localpg.Options{Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop("immediate"); os.RemoveAll(dir) })
	pool, err := pgxpool.New(ctx, srv.URL("codewatch"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m, err := migrations.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	m.Close()
	env := newPubEnv(t, pool)

	code := seamevent.NewID()
	send := func(i int) (int, map[string]any) {
		b := event(t, "access_code.changed", code)
		return env.post(t, b, signed(t, fmt.Sprintf("msg_outage_%d", i), b))
	}
	acked := map[int]bool{}
	if status, _ := send(0); status != 200 {
		t.Fatalf("before outage: %d", status)
	}
	acked[0] = true

	for _, fault := range []string{"stop", "kill"} {
		if fault == "stop" {
			if err := srv.Stop("fast"); err != nil {
				t.Fatal(err)
			}
		} else if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			n := len(acked) * 100
			status, out := send(n + i)
			wantError(t, status, out, 503, "unavailable")
		}
		if err := srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for i := 1000 * (len(acked) + 1); ; i++ {
			status, _ := send(i)
			if status == 200 {
				acked[i] = true
				break
			}
			if status != 503 {
				t.Fatalf("after %s: status %d, want 200 or 503", fault, status)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recovery after %s", fault)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range acked {
		if n := count(t, pool, `SELECT count(*) FROM events WHERE message_id = $1`, fmt.Sprintf("msg_outage_%d", i)); n != 1 {
			t.Fatalf("acknowledged msg_outage_%d stored %d times", i, n)
		}
	}
}
