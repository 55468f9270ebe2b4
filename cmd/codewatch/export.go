package main

// `codewatch export` (issue 22): the deletions export, as
// GET /v1/exports/deletions streams it, from the database.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/lifecycle"
)

func exportCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export")
	env := newCommandEnv(fs, getenv, stderr, withDataKeys)
	since := fs.String("since", "", "deletions at or after this time (RFC 3339, or a date: midnight UTC)")
	until := fs.String("until", "", "deletions before this time")
	format := fs.String("format", handlers.ExportCSV, "csv (RFC 4180) or jsonl")
	out := fs.String("o", "-", "write to this file (- for stdout)")
	err := parseNoArgs(fs, "export", args, stdout,
		"usage: codewatch export [--since T] [--until T] [--format csv|jsonl] [-o FILE]\n\nWrites one row per deleted code (the columns of GET /v1/exports/deletions),\nin deletion order, streaming: any number of rows in bounded memory.")
	if err != nil {
		return err
	}
	var f lifecycle.ExportFilter
	if f.Since, err = handlers.ParseExportTime("since", *since); err != nil {
		return usageError("export", fmt.Errorf("--since: %w", err))
	}
	if f.Until, err = handlers.ParseExportTime("until", *until); err != nil {
		return usageError("export", fmt.Errorf("--until: %w", err))
	}
	if *format != handlers.ExportCSV && *format != handlers.ExportJSONL {
		return usageError("export", errors.New("--format: must be csv or jsonl"))
	}
	db, err := env.open(ctx, keysOptional)
	if err != nil {
		return err
	}
	defer db.close()
	w := stdout
	if *out != "-" {
		file, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	return handlers.WriteExport(ctx, w, db.store, f, *format, nil, nil, false)
}
