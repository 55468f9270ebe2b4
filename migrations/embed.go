// Package migrations holds codewatch's Postgres schema as goose SQL files,
// embedded so the binary needs nothing else at run time, and the runner that
// applies them.
//
// A migration runs while replicas of the previous version keep writing, so
// each one after 00009 follows the rules in README.md (checked by
// TestMigrationRules, and under ingest by TestUpgradeUnderIngest): indexes
// built CONCURRENTLY in a -- +goose NO TRANSACTION file, each after a
// DROP INDEX CONCURRENTLY IF EXISTS of its name (a failed build leaves an
// INVALID index that the re-run must replace), constraints added NOT VALID
// and validated later, a lock_timeout before the first statement, nothing
// that rewrites a table or updates a big one in one transaction.
package migrations

import "embed"

// FS holds every migration; goose reads it with the directory ".".
//
//go:embed *.sql
var FS embed.FS
