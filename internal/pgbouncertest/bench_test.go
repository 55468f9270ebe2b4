package pgbouncertest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/codewatch/codewatch/internal/pgtest"
)

// BenchmarkInsertTx: one INSERT per transaction from 8 concurrent clients,
// straight to Postgres and through PgBouncer. A crude comparison, not a
// target: it includes the extra hop and PgBouncer's pool of 5 server
// connections for 8 clients.
func BenchmarkInsertTx(b *testing.B) {
	const clients = 8
	cases := []struct {
		name    string
		bounced bool
		mode    pgx.QueryExecMode
	}{
		{"direct/CacheStatement", false, pgx.QueryExecModeCacheStatement},
		{"direct/CacheDescribe", false, pgx.QueryExecModeCacheDescribe},
		{"bounced/CacheDescribe", true, pgx.QueryExecModeCacheDescribe},
		{"bounced/Exec", true, pgx.QueryExecModeExec},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			direct, bounced := pgtest.NewBouncedURL(b)
			probeTable(b, direct)
			url := direct
			if c.bounced {
				url = bounced
			}
			pool := newPool(b, url, c.mode, clients)
			ctx := context.Background()
			work := make(chan int)
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range clients {
				wg.Go(func() {
					for i := range work {
						err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							_, err := tx.Exec(ctx, "INSERT INTO probe (worker, n) VALUES ($1, $2)", w, i)
							return err
						})
						if err != nil {
							b.Error(err)
						}
					}
				})
			}
			for i := 0; i < b.N; i++ {
				work <- i
			}
			close(work)
			wg.Wait()
			b.StopTimer()
		})
	}
}
