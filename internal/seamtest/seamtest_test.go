package seamtest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/codewatch/codewatch/internal/seamtest"
)

func TestStartAndControl(t *testing.T) {
	f := seamtest.Start(t)
	if !strings.HasPrefix(f.URL, "http://127.0.0.1:") || f.APIKey != "seam_apikey1_token" ||
		f.WorkspaceID != "seed_workspace_1" || strings.Join(f.Devices, ",") != "august_device_1,august_device_2" {
		t.Errorf("fake = %+v", f)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "test", "seamtest", "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		t.Fatalf("package.json: %v", err)
	}
	if f.Version != pkg.Dependencies["@seamapi/fake-seam-connect"] {
		t.Errorf("running %s, package.json pins %s", f.Version, pkg.Dependencies["@seamapi/fake-seam-connect"])
	}

	ctx := context.Background()
	ev, err := f.AddEvent(ctx, map[string]any{"event_type": "lock.unlocked", "created_at": "2025-01-01T00:00:00.000Z"})
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if json.Unmarshal(ev, &e) != nil || e["event_id"] == "" || e["workspace_id"] != f.WorkspaceID ||
		e["occurred_at"] != "2025-01-01T00:00:00.000Z" {
		t.Errorf("event = %s", ev)
	}

	// Mistakes come back as errors that say what was wrong.
	for name, err := range map[string]error{
		"event_type":               func() error { _, err := f.AddEvent(ctx, map[string]any{}); return err }(),
		"device_not_found":         f.SetDeviceOnline(ctx, "no_such_device", false),
		"code is required":         func() error { _, err := f.AddAccessCode(ctx, f.Devices[0], "", map[string]any{"code": 5}); return err }(),
		"access_code_not_found":    f.UpdateAccessCode(ctx, "no_such_code", nil),
		"ActionAttemptError":       f.UpdateActionAttempt(ctx, "x", "error", nil),
		"action_attempt_not_found": f.UpdateActionAttempt(ctx, "no_such_attempt", "pending", nil),
		"device_not_found ":        func() error { _, err := f.CreateAccessCode(ctx, "no_such_device", "1234"); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%s: err = %v", name, err)
		} else if strings.Contains(err.Error(), "chunk-") {
			t.Errorf("%s: the fake's stack leaked into the error: %v", name, err)
		}
	}

	// Unknown control routes and methods.
	resp, err := http.Get(f.URL + "/_codewatch/add_event")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s", resp.Status)
	}
}

func TestFakesAreSeparateAndStop(t *testing.T) {
	var mu sync.Mutex
	urls := map[string]bool{}
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"a", "b", "c"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := seamtest.Start(t)
				if _, err := f.CreateAccessCode(context.Background(), f.Devices[0], "1234"); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				urls[f.URL] = true
				mu.Unlock()
			})
		}
	})
	if len(urls) != 3 {
		t.Fatalf("urls = %v", urls)
	}
	// Each fake stopped with its test.
	for u := range urls {
		if resp, err := http.Get(u + "/health"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after its test ended", u)
		}
	}
}
