// Package migrations holds codewatch's Postgres schema as goose SQL files,
// embedded so the binary needs nothing else at run time.
package migrations

import "embed"

// FS holds every migration; goose reads it with the directory ".".
//
//go:embed *.sql
var FS embed.FS
