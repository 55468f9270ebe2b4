package names_test

import (
	"testing"

	"github.com/codewatch/codewatch/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
