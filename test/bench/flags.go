package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

type options struct {
	bin          string
	duration     time.Duration
	warmup       time.Duration
	levels       []int
	quick        bool
	skipSweep    bool
	skipPgbench  bool
	skipAttack   bool
	attackers    int
	attackChild  string
	sweepCodes   int
	sweepOverdue int
	keep         bool
	statements   bool
	env          []string
	pg           []string
	timeout      time.Duration

	// -reads: the read benchmark (reads.go) instead of the others.
	reads          bool
	readCodes      int
	readDevices    int
	readWorkspaces int
	readers        int
	readDuration   time.Duration
	readWarmup     time.Duration
	readInterval   time.Duration
	readStates     string
	readCapacity   bool
	ingestRate     int
}

type envFlag struct{ v *[]string }

func (e envFlag) String() string {
	if e.v == nil {
		return ""
	}
	return strings.Join(*e.v, ",")
}

func (e envFlag) Set(s string) error {
	if !strings.Contains(s, "=") {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*e.v = append(*e.v, s)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "bin/codewatch", "the codewatch binary to run (make build)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per concurrency level (pgbench runs warm-up + this)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each level")
	levels := fs.String("levels", "8,32,128", "comma-separated concurrencies")
	fs.BoolVar(&o.quick, "quick", false, "CI length: 3s per level, 1s warm-up, 100,000 codes for the sweep")
	fs.BoolVar(&o.skipSweep, "skip-sweep", false, "skip the sweeper measurement")
	fs.BoolVar(&o.skipPgbench, "skip-pgbench", false, "skip the pgbench ceiling")
	fs.BoolVar(&o.skipAttack, "skip-attack", false, "skip the unverified-body (memory) attack")
	fs.IntVar(&o.attackers, "attackers", 500, "concurrent forged 1 MiB uploads in the attack phase")
	fs.StringVar(&o.attackChild, "attack-child", "", "internal: be the attacking child process, uploading to this URL")
	fs.IntVar(&o.sweepCodes, "sweep-codes", 1_000_000, "access codes seeded for the sweep")
	fs.IntVar(&o.sweepOverdue, "sweep-overdue", 10_000, "of which overdue")
	fs.BoolVar(&o.statements, "statements", false, "diagnosis: preload pg_stat_statements and print the statements that took the most time per level")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (Postgres data, service log)")
	fs.Var(envFlag{&o.pg}, "pg", "extra postgresql.conf NAME=VALUE for the benchmark's Postgres, e.g. -pg shared_buffers=1GB (repeatable)")
	fs.Var(envFlag{&o.env}, "env", "extra KEY=VALUE for the service's environment, e.g. -env CODEWATCH_DB_MAX_CONNS=20 (repeatable)")
	fs.DurationVar(&o.timeout, "timeout", 0, "bound on the whole run (default: from the durations)")
	fs.BoolVar(&o.reads, "reads", false, "run the read benchmark (make bench-reads) instead: ops reads at a million codes during ingest")
	fs.IntVar(&o.readCodes, "read-codes", 1_000_000, "-reads: access codes seeded (about 3.1 events each)")
	fs.IntVar(&o.readDevices, "read-devices", 5_000, "-reads: locks the codes are spread over")
	fs.IntVar(&o.readWorkspaces, "read-workspaces", 20, "-reads: workspaces the locks are spread over")
	fs.IntVar(&o.readers, "readers", 8, "-reads: concurrent readers")
	fs.DurationVar(&o.readDuration, "read-duration", 10*time.Second, "-reads: measured time per read")
	fs.DurationVar(&o.readWarmup, "read-warmup", 2*time.Second, "-reads: unmeasured warm-up before each read")
	fs.DurationVar(&o.readInterval, "read-interval", 100*time.Millisecond, "-reads: each reader starts a request this often, for the targets (0: closed loop)")
	fs.BoolVar(&o.readCapacity, "read-capacity", true, "-reads: also measure each read with the readers in a closed loop (capacity)")
	fs.StringVar(&o.readStates, "read-states", "awaiting_removal,delayed,failed", "-reads: the deletion_state filter measured")
	fs.IntVar(&o.ingestRate, "ingest-rate", 1000, "-reads: webhooks per second throughout")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["warmup"] {
			o.warmup = time.Second
		}
		if !set["sweep-codes"] {
			o.sweepCodes = 100_000
		}
		if !set["read-codes"] {
			o.readCodes = 50_000
		}
		if !set["read-devices"] {
			o.readDevices = 500
		}
		if !set["read-duration"] {
			o.readDuration = 3 * time.Second
		}
		if !set["read-warmup"] {
			o.readWarmup = time.Second
		}
	}
	if o.readers < 1 || o.ingestRate < 1 || o.readCodes < 1000 || o.readDevices < 1 || o.readWorkspaces < 1 {
		return nil, fmt.Errorf("-readers, -ingest-rate, -read-devices, -read-workspaces must be positive and -read-codes at least 1000")
	}
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("-levels: %q is not a concurrency from 1 to 4096", s)
		}
		o.levels = append(o.levels, n)
	}
	if o.duration < time.Second {
		return nil, fmt.Errorf("-duration: at least 1s")
	}
	if o.timeout == 0 {
		per := o.warmup + o.duration + 5*time.Second
		o.timeout = time.Duration(len(o.levels))*per*2 + 4*time.Minute
		if o.reads {
			// Seeding a million codes takes minutes; 15 phases.
			o.timeout = 30*time.Minute + 15*(o.readWarmup+o.readDuration)*2
		}
	}
	return o, nil
}

// setPGFlags adds -pg's NAME=VALUE settings to settings, quoted for
// postgresql.conf.
func setPGFlags(settings map[string]string, pg []string) {
	for _, kv := range pg {
		k, v, _ := strings.Cut(kv, "=")
		settings[k] = "'" + strings.Trim(v, "'") + "'"
	}
}
