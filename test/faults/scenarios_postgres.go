package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Faults of Postgres and its disk: stopped, crashed, frozen, read-only,
// out of space; each undone while the load goes on.

func pgStopScenario() *scenario {
	return faultScenario("pg-stop", "Postgres fast shutdown, restart",
		func(p *params) time.Duration { return p.PGStopPause },
		func(_ context.Context, x *runCtx) error { return wrapErr("stop Postgres", x.h.pg.Stop("fast")) },
		func(ctx context.Context, x *runCtx) error { return wrapErr("restart Postgres", x.h.restartPG(ctx)) })
}

func pgKillScenario() *scenario {
	return faultScenario("pg-kill", "Postgres crash (SIGKILL postmaster), restart",
		func(p *params) time.Duration { return p.PGKillPause },
		func(_ context.Context, x *runCtx) error { return wrapErr("kill Postgres", x.h.pg.Kill()) },
		func(ctx context.Context, x *runCtx) error {
			return wrapErr("restart Postgres after crash", x.h.restartPG(ctx))
		})
}

func pgFreezeScenario() *scenario {
	return &scenario{
		key: "pg-freeze", title: "Postgres frozen (SIGSTOP) for longer than Svix's 15 s timeout, then resumed",
		tune: func(p params) params {
			// One freeze, with load enough before and after it.
			p.Injections = 1
			if min := p.FreezePause + 6*time.Second; p.Load < min {
				p.Load = min
			}
			return p
		},
		extraSlots: faultWaves(func(p *params) time.Duration { return p.FreezePause }),
		// Not a faultCycle: Postgres is resumed even when the wait is cut short.
		inject: func(ctx context.Context, x *runCtx) error {
			for _, at := range faultTimes(x.p, x.start, x.p.FreezePause) {
				if err := strike(ctx, x, at); err != nil {
					return err
				}
				n, err := x.h.freezePG()
				if err != nil {
					return fmt.Errorf("freeze Postgres: %w", err)
				}
				x.res.note("pg-freeze: stopped %d Postgres processes for %s", n, x.p.FreezePause)
				err = sleepUntil(ctx, time.Now().Add(x.p.FreezePause))
				x.faultEnded(time.Now())
				if terr := x.h.thawPG(); terr != nil {
					return fmt.Errorf("resume Postgres: %w", terr)
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func pgReadOnlyScenario() *scenario {
	return faultScenario("pg-readonly", "Postgres read-only (default_transaction_read_only), then writable",
		func(p *params) time.Duration { return p.ROPause },
		func(ctx context.Context, x *runCtx) error { return setReadOnly(ctx, x, true) },
		func(ctx context.Context, x *runCtx) error { return setReadOnly(ctx, x, false) })
}

// setReadOnly makes every new transaction on the server read-only, as a
// server put in read-only mode (disk nearly full, failover) does; writes fail
// with SQLSTATE 25006.
// (Server settings, not the domain's tables: its SQL stays here.)
func setReadOnly(ctx context.Context, x *runCtx, on bool) error {
	conn, err := pgx.Connect(ctx, x.h.pg.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	stmts := []string{"SET default_transaction_read_only = off", "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"}
	if on {
		stmts[1] = "ALTER SYSTEM SET default_transaction_read_only = on"
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func diskFullScenario() *scenario {
	sc := faultScenario("disk-full", "the database's disk full (tablespace on a small tmpfs), then freed",
		func(p *params) time.Duration { return p.DiskPause },
		func(_ context.Context, x *runCtx) error {
			n, err := x.h.fillDisk()
			if err != nil {
				return fmt.Errorf("fill the disk: %w", err)
			}
			x.res.note("disk-full: filled the database's disk with %s", mib(n))
			return nil
		},
		func(_ context.Context, x *runCtx) error { return wrapErr("free the disk", x.h.freeDisk()) })
	sc.prepare = func(ctx context.Context, h *harness) (string, string, error) {
		skip, err := h.prepareSmallDisk(ctx)
		return tsName, skip, err
	}
	return sc
}
