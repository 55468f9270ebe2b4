package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/postgres"
	"github.com/codewatch/codewatch/proof"
)

// devKeyID names the data key development mode generates.
const devKeyID = "dev"

// keys handles `codewatch keys generate [ID]`.
func keys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys")
	signing := fs.Bool("signing", false, "print a signing key for CODEWATCH_SIGNING_KEY (Ed25519 seed), and its public key on stderr")
	_, rest, err := parseVerb(fs, "keys", args, stdout,
		"usage: codewatch keys generate [ID] [--signing]\n\nPrints a new data key, ID:base64key (32 random bytes), for CODEWATCH_DATA_KEYS.\nID (letters, digits, _ and -) defaults to k and today's date, e.g. k20261130.\nTo rotate, put the new key first and keep the old ones after it until\n`codewatch rekey` says no stored body uses them.\n\nWith --signing: an Ed25519 signing key, ID:base64seed, for CODEWATCH_SIGNING_KEY\n(ID defaults to s and today's date), and its public key on stderr.",
		[]string{"generate"}, 1)
	if err != nil {
		return err
	}
	id := "k" + time.Now().UTC().Format("20060102")
	if *signing {
		id = "s" + time.Now().UTC().Format("20060102")
	}
	if len(rest) == 1 {
		id = rest[0]
	}
	if *signing {
		entry, pub, err := proof.Generate(id)
		if err != nil {
			return usageError("keys", err)
		}
		fmt.Fprintln(stdout, entry)
		fmt.Fprintf(stderr, "public key (GET /v1/proof/public_key): %s\n", pub)
		return nil
	}
	entry, err := datakeys.Generate(id)
	if err != nil {
		return usageError("keys", errors.New(strings.TrimPrefix(err.Error(), "datakeys: ")))
	}
	fmt.Fprintln(stdout, entry)
	return nil
}

// rekey handles `codewatch rekey`.
func rekey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rekey")
	env := newCommandEnv(fs, getenv, stderr, withDataKeys)
	batch := fs.Int("batch", 200, "rows per transaction")
	err := parseNoArgs(fs, "rekey", args, stdout,
		"usage: codewatch rekey [flags]\n\nEncrypts every stored webhook body that is not under the first key of\nCODEWATCH_DATA_KEYS (bodies under an older key, and bodies stored in clear\nbefore encryption) under that key, renewing PIN hashes with it, in batches of\nsmall transactions: safe while the service runs. Codes whose PIN the renewed\nhashes newly match with a lock's report are refolded. Then counts the stored\nbodies per key and says which keys no body uses any more.")
	if err != nil {
		return err
	}
	if *batch < 1 || *batch > 10000 {
		return usageError("rekey", fmt.Errorf("--batch: must be from 1 to 10000, got %d", *batch))
	}
	db, err := env.open(ctx, keysRequired)
	if err != nil {
		return err
	}
	defer db.close()
	store, kr := db.store, db.keys

	fmt.Fprintf(stdout, "rekey: encrypting under key %s (configured: %s)\n", kr.PrimaryID(), strings.Join(kr.IDs(), ", "))
	pr := newProgressLine(stdout)
	start := time.Now()
	res, err := store.Rekey(ctx, postgres.RekeyOptions{BatchSize: *batch, Progress: func(p postgres.RekeyProgress) {
		pct := 100.0
		if p.Total > 0 {
			pct = min(100, 100*float64(p.Done)/float64(p.Total))
		}
		line := fmt.Sprintf("rekey: %s %d/%d (%.0f%%), %s", p.Table, p.Done, p.Total, pct, time.Since(start).Round(time.Second))
		if p.Unreadable > 0 {
			line += fmt.Sprintf(", %d unreadable", p.Unreadable)
		}
		pr.update(p.Table, line)
	}})
	pr.end()
	if res.Resealed != nil {
		fmt.Fprintf(stdout, "rekey: re-encrypted %d events and %d quarantined deliveries in %s\n",
			res.Resealed["events"], res.Resealed["quarantine"], time.Since(start).Round(time.Millisecond))
	}
	if res.Refolded > 0 {
		fmt.Fprintf(stdout, "rekey: refolded %d codes that the renewed PIN hashes match with a lock's report or another code\n", res.Refolded)
	}
	if err != nil && len(res.Unreadable) == 0 {
		return err
	}
	usage, uerr := store.KeyUsage(ctx)
	if uerr != nil {
		return uerr
	}
	fmt.Fprintln(stdout, describeUsage(usage, kr))
	return err
}

// describeUsage says how many stored bodies each key seals, and which
// configured keys seal none (they may be removed).
func describeUsage(usage map[string]map[string]int64, kr *datakeys.Keyring) string {
	var b strings.Builder
	used := map[string]bool{}
	var tables []string
	for _, table := range []string{"events", "quarantine"} {
		ids := make([]string, 0, len(usage[table]))
		for id := range usage[table] {
			ids = append(ids, id)
			used[id] = true
		}
		sort.Strings(ids)
		parts := make([]string, len(ids))
		for i, id := range ids {
			name := id
			if id == "" {
				name = "in clear"
			}
			parts[i] = fmt.Sprintf("%s %d", name, usage[table][id])
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		tables = append(tables, table+": "+strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, "stored bodies per key: %s\n", strings.Join(tables, "; "))
	var unused, left []string
	for _, id := range kr.IDs()[1:] {
		if !used[id] {
			unused = append(unused, id)
		}
	}
	for id := range used {
		if id != kr.PrimaryID() {
			if id == "" {
				id = "(in clear)"
			}
			left = append(left, id)
		}
	}
	sort.Strings(left)
	switch {
	case len(left) > 0:
		fmt.Fprintf(&b, "bodies not under %s remain: %s (unreadable ones are listed above; others were written meanwhile by a replica that encrypts with another key: run rekey again once every replica has %s first)",
			kr.PrimaryID(), strings.Join(left, ", "), kr.PrimaryID())
	case len(unused) > 0:
		fmt.Fprintf(&b, "every stored body is under %s; no body uses %s, which may be removed from CODEWATCH_DATA_KEYS (keep a backup of it for as long as you keep database backups)",
			kr.PrimaryID(), strings.Join(unused, ", "))
	default:
		fmt.Fprintf(&b, "every stored body is under %s", kr.PrimaryID())
	}
	return b.String()
}

// progressLine shows progress as one line rewritten in place on a terminal,
// and elsewhere (a log, a pipe) as a line at most every few seconds and at
// the end of each table.
type progressLine struct {
	w        io.Writer
	terminal bool
	table    string
	line     string
	printed  time.Time
}

func newProgressLine(w io.Writer) *progressLine {
	p := &progressLine{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progressLine) update(table, line string) {
	if p.table != "" && table != p.table {
		p.flush()
	}
	p.table, p.line = table, line
	switch {
	case p.terminal:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	case time.Since(p.printed) >= 5*time.Second:
		fmt.Fprintln(p.w, line)
		p.printed = time.Now()
		p.line = ""
	}
}

// flush ends the current table's line.
func (p *progressLine) flush() {
	switch {
	case p.terminal && p.table != "":
		fmt.Fprintln(p.w)
	case !p.terminal && p.line != "":
		fmt.Fprintln(p.w, p.line)
	}
	p.table, p.line = "", ""
	p.printed = time.Time{}
}

func (p *progressLine) end() { p.flush() }
