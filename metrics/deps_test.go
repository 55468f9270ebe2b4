package metrics_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The event_type label is bounded by Seam's list of event types, which is
// Seam's fact (package seam): metrics does not depend on the test-event
// sender (seamevent) for it.
func TestMetricsDoNotImportTheSender(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/codewatch/codewatch/metrics").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/codewatch/codewatch/seamevent" {
			t.Errorf("metrics depends on %s", dep)
		}
	}
}
