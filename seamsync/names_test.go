package seamsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/postgres"
)

// Seam forgets a code once it is deleted: codewatch's own deletion request
// reads the code's name first (issue 22), so the deleted code keeps it.
func TestDeletionKeepsTheCodesName(t *testing.T) {
	ctx := context.Background()
	e := onFake(t, postgres.Config{})
	id, err := e.fake.AddAccessCode(ctx, e.fake.Devices[0], "4821", map[string]any{"name": "Guest: Smith, 5–8 Dec"})
	if err != nil {
		t.Fatal(err)
	}
	e.webhook(seamEvent(t, lifecycle.TypeSetOnDevice, id, e.fake.Devices[0], time.Now().Add(-time.Hour)))
	if c := e.code(id); c.AccessCodeName != nil {
		t.Fatalf("a name before any fetch: %s", *c.AccessCodeName)
	}
	c, err := e.svc.RequestDeletion(ctx, id, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessCodeName == nil || *c.AccessCodeName != "Guest: Smith, 5–8 Dec" {
		t.Fatalf("the deleted code's name: %v", c.AccessCodeName)
	}
}
