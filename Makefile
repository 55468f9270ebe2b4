# codewatch. `make run` and `make test` work on a fresh machine with
# PostgreSQL installed (not running) and Go.
GO      ?= go
BIN     := bin/codewatch
# The Dockerfile builds with exactly these flags.
BUILD_FLAGS := -trimpath -ldflags='-s -w'

.PHONY: run test test-short build bench bench-reads bench-history faults faults-short fuzz check deploy-check clean

## run: start codewatch with a local Postgres under .codewatch/ (DATABASE_URL unset)
run:
	CODEWATCH_LOG_FORMAT=$${CODEWATCH_LOG_FORMAT:-text} $(GO) run ./cmd/codewatch serve

# One throwaway Postgres for a whole go test run (pg_virtualenv, from
# postgresql-common); without it, each test binary starts a private one.
WITH_PG := $(shell command -v pg_virtualenv >/dev/null 2>&1 && echo pg_virtualenv -t)

## test: every test, with the race detector, against one throwaway Postgres
test:
	$(WITH_PG) $(GO) test -race -count=1 ./...

build:
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(BIN) ./cmd/codewatch

## bench: ingest and sweep benchmark against a real Postgres (fsync on)
bench: build
	$(GO) run ./test/bench -bin $(BIN) $(BENCH_FLAGS)

## bench-reads: ops reads at a million codes during ingest (issue 15; about 10 minutes)
bench-reads: build
	$(GO) run ./test/bench -bin $(BIN) -reads $(BENCH_FLAGS)

## bench-history: ingest into codes with 100,000 events against fresh codes (issue 21, point 1; about a minute)
bench-history:
	$(WITH_PG) $(GO) test -count=1 -run '^$$' -bench '^BenchmarkIngestLongHistory$$' -benchtime 1x ./postgres

## faults: the fault-injection suite (FAULTS_FLAGS=-short for the CI length)
faults: build
	$(GO) run ./test/faults -bin $(BIN) $(FAULTS_FLAGS)

faults-short: build
	$(GO) run ./test/faults -bin $(BIN) -short

## fuzz: a short run of every fuzz target
# Budgets are counts of executions, not durations: go1.26's fuzz coordinator
# can report a spurious "context deadline exceeded" failure when a -fuzztime
# duration ends under load (golang/go#75804, fixed in go1.27); a count has no
# deadline to race. The targets that write to Postgres run some thousand
# times slower, hence their own budget.
FUZZ_N    ?= 500000x
FUZZ_DB_N ?= 300x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_N) ./lifecycle
	$(GO) test -run '^$$' -fuzz '^FuzzFold$$' -fuzztime $(FUZZ_N) ./lifecycle
	$(GO) test -run '^$$' -fuzz '^FuzzRelevant$$' -fuzztime $(FUZZ_N) ./lifecycle
	$(GO) test -run '^$$' -fuzz '^FuzzMaskPINs$$' -fuzztime $(FUZZ_N) ./datakeys
	$(WITH_PG) $(GO) test -run '^$$' -fuzz '^FuzzWebhook$$' -fuzztime $(FUZZ_DB_N) ./handlers
	$(WITH_PG) $(GO) test -run '^$$' -fuzz '^FuzzStoredEventsRead$$' -fuzztime $(FUZZ_DB_N) ./handlers

## check: formatting and vet
check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

deploy-check:
	bash deploy/check.sh

clean:
	rm -rf bin
