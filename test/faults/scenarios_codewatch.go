package main

import (
	"context"
	"time"
)

// Faults of codewatch's own process: killed, or stopped gracefully, and
// restarted on the same ports and database.

func kill9Scenario() *scenario {
	return faultScenario("kill9", "kill -9 codewatch, restart",
		func(p *params) time.Duration { return p.KillPause },
		func(_ context.Context, x *runCtx) error {
			x.svc().kill()
			return nil
		},
		func(ctx context.Context, x *runCtx) error {
			return wrapErr("restart after kill -9", x.restartService(ctx))
		})
}

func sigtermScenario() *scenario {
	return faultScenario("sigterm", "SIGTERM codewatch (graceful), restart",
		func(p *params) time.Duration { return p.TermPause },
		func(_ context.Context, x *runCtx) error {
			took, err := x.svc().terminate(shutdownTimeout + 5*time.Second)
			switch {
			case err != nil:
				x.res.fail("sigterm: codewatch did not exit cleanly: %v", err)
			case took > shutdownTimeout+time.Second:
				x.res.fail("sigterm: codewatch took %s to exit, CODEWATCH_SHUTDOWN_TIMEOUT is %s", took.Round(time.Millisecond), shutdownTimeout)
			default:
				x.res.note("SIGTERM: exited 0 after %s", took.Round(time.Millisecond))
			}
			return nil
		},
		func(ctx context.Context, x *runCtx) error {
			return wrapErr("restart after SIGTERM", x.restartService(ctx))
		})
}
