package lifecycle_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The domain stays plain Go: no database, no HTTP, no job queue, at any
// depth of its imports.
func TestLifecycleImportsNoDatabaseOrHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/codewatch/codewatch/lifecycle").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"database/sql", "net/http", "github.com/jackc/", "github.com/labstack/",
		"github.com/riverqueue/", "github.com/pressly/", "github.com/codewatch/codewatch/postgres",
		"github.com/codewatch/codewatch/handlers"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("lifecycle depends on %s", dep)
			}
		}
	}
}
