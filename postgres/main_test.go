package postgres

import (
	"os"
	"testing"

	"github.com/codewatch/codewatch/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Teardown()
	os.Exit(code)
}
