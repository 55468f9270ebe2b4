package main

import (
	"context"
	"time"
)

// Faults of codewatch's own process: killed, or stopped gracefully, and
// restarted on the same ports and database.

func kill9Scenario() *scenario {
	pause := func(p *params) time.Duration { return p.KillPause }
	return &scenario{
		key: "kill9", title: "kill -9 codewatch, restart", crashy: true,
		extraSlots: faultWaves(pause),
		inject: faultCycle(pause, func(_ context.Context, x *runCtx) error {
			x.svc().kill()
			return nil
		}, func(ctx context.Context, x *runCtx) error {
			return wrapErr("restart after kill -9", x.restartService(ctx))
		}),
	}
}

func sigtermScenario() *scenario {
	pause := func(p *params) time.Duration { return p.TermPause }
	return &scenario{
		key: "sigterm", title: "SIGTERM codewatch (graceful), restart", crashy: true,
		extraSlots: faultWaves(pause),
		inject: faultCycle(pause, func(_ context.Context, x *runCtx) error {
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
		}, func(ctx context.Context, x *runCtx) error {
			return wrapErr("restart after SIGTERM", x.restartService(ctx))
		}),
	}
}
