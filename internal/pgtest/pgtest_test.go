package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestNewBouncedURL: both URLs reach the same fresh, migrated database, and
// the bounced one goes through PgBouncer.
func TestNewBouncedURL(t *testing.T) {
	direct, bounced := pgtest.NewBouncedURL(t)
	ctx := context.Background()
	d, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(ctx)
	b, err := pgx.Connect(ctx, bounced)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)

	var dname, bname string
	if err := d.QueryRow(ctx, "SELECT current_database()").Scan(&dname); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&bname); err != nil {
		t.Fatal(err)
	}
	if dname != bname {
		t.Fatalf("direct database %q, bounced %q", dname, bname)
	}
	var migrated bool
	if err := b.QueryRow(ctx, "SELECT to_regclass('events') IS NOT NULL").Scan(&migrated); err != nil || !migrated {
		t.Fatalf("bounced database not migrated: %v %v", migrated, err)
	}

	// The admin console lists a pool for this database.
	admin, err := pgx.Connect(ctx, pgtest.Bouncer().AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	rows, err := admin.PgConn().Exec(ctx, "SHOW POOLS").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		for _, row := range r.Rows {
			if string(row[0]) == dname {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("SHOW POOLS has no pool for %s", dname)
	}

	// A second database in the same test binary goes through the same
	// PgBouncer, no reload needed.
	_, bounced2 := pgtest.NewBouncedURL(t)
	b2, err := pgx.Connect(ctx, bounced2)
	if err != nil {
		t.Fatal(err)
	}
	b2.Close(ctx)
}
