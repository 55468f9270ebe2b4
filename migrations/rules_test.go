package migrations_test

import (
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/migrations"
)

// exemptThrough is the newest migration that the rules below do not hold:
// 00001-00009 were applied in the field before them and stay as they are
// (editing an applied migration changes nothing where it already ran, and
// would make a fresh database differ from an upgraded one). Each later one
// must pass them (README.md in this directory explains each rule).
const exemptThrough = 9

// Every migration after exemptThrough keeps a running service's ingest
// moving while it runs (issue "Never a false all-clear", point 15).
func TestMigrationRules(t *testing.T) {
	files := migrationFiles(t, migrations.FS)
	var checked []migFile
	for _, f := range files {
		if f.version > exemptThrough {
			checked = append(checked, f)
		}
	}
	for _, p := range checkMigrations(checked) {
		t.Error(p)
	}
	t.Logf("%d migrations after %05d checked", len(checked), exemptThrough)
}

// The checker itself: each bad snippet is caught, each good one passes, and
// the exempt migrations that stalled ingest (00006, 00008) would be caught.
func TestMigrationRulesChecker(t *testing.T) {
	const tx = "-- +goose Up\nSET LOCAL lock_timeout = '5s';\n"
	const noTx = "-- +goose NO TRANSACTION\n-- +goose Up\nSET lock_timeout = '5s';\n"
	const down = "\n-- +goose Down\n"
	cases := []struct {
		name  string
		files []string // versions 10, 11, ... in order
		want  []string // a problem containing each; none when empty
	}{
		// Good.
		{"concurrent index, dropped first", []string{noTx + `
DROP INDEX CONCURRENTLY IF EXISTS events_x_idx;
CREATE INDEX CONCURRENTLY events_x_idx ON events (received_at) WHERE source = 'poll';` + down + `
SET lock_timeout = '5s';
DROP INDEX CONCURRENTLY IF EXISTS events_x_idx;`}, nil},
		{"constraint NOT VALID, validated in a later file", []string{tx + `
ALTER TABLE events ADD COLUMN note text;
ALTER TABLE events ADD CONSTRAINT events_note_check CHECK (length(note) < 100) NOT VALID;
ALTER TABLE events ADD CONSTRAINT events_code_fk FOREIGN KEY (access_code_id)
    REFERENCES access_codes (access_code_id) NOT VALID;` + down + `
SET LOCAL lock_timeout = '5s';
ALTER TABLE events DROP CONSTRAINT events_code_fk;
ALTER TABLE events DROP CONSTRAINT events_note_check;
ALTER TABLE events DROP COLUMN note;`, noTx + `
ALTER TABLE events VALIDATE CONSTRAINT events_note_check;
ALTER TABLE events VALIDATE CONSTRAINT events_code_fk;` + down}, nil},
		{"constraint NOT VALID, validated in the same NO TRANSACTION file", []string{noTx + `
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (event_type <> '') NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_type_check;
ALTER TABLE events ADD COLUMN IF NOT EXISTS note text;` + down + `
SET lock_timeout = '5s';
ALTER TABLE events DROP COLUMN IF EXISTS note, DROP CONSTRAINT IF EXISTS events_type_check;`}, nil},
		{"a new table, its indexes and constraints", []string{tx + `
CREATE TABLE notes (id bigint PRIMARY KEY, code text NOT NULL REFERENCES access_codes (access_code_id));
CREATE INDEX notes_code_idx ON notes (code);
ALTER TABLE notes ADD CONSTRAINT notes_id_check CHECK (id > 0);
INSERT INTO notes SELECT id, access_code_id FROM access_codes WHERE false;` + down + `
SET LOCAL lock_timeout = '5s';
DROP INDEX notes_code_idx;
DROP TABLE notes;`}, nil},
		{"defaults that rewrite nothing", []string{tx + `
ALTER TABLE events ADD COLUMN a text NOT NULL DEFAULT 'x', ADD COLUMN b timestamptz DEFAULT now();` + down}, nil},
		{"an UPDATE its author bounds", []string{tx + `
-- rules: bounded: a few rows, through devices_offline_idx
UPDATE devices SET flaky = false WHERE online = false;` + down}, nil},
		{"a statement body with semicolons", []string{tx + `
-- +goose StatementBegin
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE events SET raw = ''; CREATE INDEX i ON events (id); RETURN NULL; END $$;
-- +goose StatementEnd` + down}, nil},

		// Bad.
		{"plain CREATE INDEX on an existing table", []string{tx + `
CREATE INDEX events_x_idx ON events (received_at);` + down}, []string{"CONCURRENTLY"}},
		{"CONCURRENTLY inside a transaction", []string{tx + `
DROP INDEX CONCURRENTLY IF EXISTS events_x_idx;
CREATE INDEX CONCURRENTLY events_x_idx ON events (received_at);` + down}, []string{"NO TRANSACTION"}},
		{"concurrent index not dropped first", []string{noTx + `
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_x_idx ON events (received_at);` + down}, []string{"DROP INDEX CONCURRENTLY IF EXISTS events_x_idx"}},
		{"unnamed concurrent index", []string{noTx + `
CREATE INDEX CONCURRENTLY ON events (received_at);` + down}, []string{"name"}},
		{"plain DROP INDEX on an existing table", []string{tx + `
DROP INDEX events_pin_idx;` + down}, []string{"DROP INDEX CONCURRENTLY"}},
		{"no lock_timeout", []string{"-- +goose Up\nALTER TABLE events ADD COLUMN note text;" + down}, []string{"lock_timeout"}},
		{"lock_timeout after the first DDL", []string{"-- +goose Up\nALTER TABLE events ADD COLUMN note text;\nSET LOCAL lock_timeout = '5s';" + down}, []string{"lock_timeout"}},
		{"no lock_timeout in Down", []string{tx + "ALTER TABLE events ADD COLUMN note text;" + down + "ALTER TABLE events DROP COLUMN note;"}, []string{"Down", "lock_timeout"}},
		{"session SET in a transaction", []string{"-- +goose Up\nSET lock_timeout = '5s';\nALTER TABLE events ADD COLUMN note text;" + down}, []string{"SET LOCAL"}},
		{"SET LOCAL outside a transaction", []string{"-- +goose NO TRANSACTION\n-- +goose Up\nSET LOCAL lock_timeout = '5s';\nANALYZE events;" + down}, []string{"no effect"}},
		{"lock_timeout off", []string{"-- +goose Up\nSET LOCAL lock_timeout = 0;\nALTER TABLE events ADD COLUMN note text;" + down}, []string{"between"}},
		{"lock_timeout too long", []string{"-- +goose Up\nSET LOCAL lock_timeout TO '1min';\nALTER TABLE events ADD COLUMN note text;" + down}, []string{"between"}},
		{"validated CHECK", []string{tx + `
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (event_type <> '');` + down}, []string{"NOT VALID"}},
		{"validated FOREIGN KEY", []string{tx + `
ALTER TABLE events ADD CONSTRAINT events_code_fk FOREIGN KEY (access_code_id) REFERENCES access_codes (access_code_id);` + down}, []string{"NOT VALID"}},
		{"column with a FOREIGN KEY", []string{tx + `
ALTER TABLE events ADD COLUMN lock text REFERENCES devices (device_id);` + down}, []string{"NOT VALID"}},
		{"NOT VALID never validated", []string{tx + `
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (event_type <> '') NOT VALID;` + down}, []string{"VALIDATE CONSTRAINT"}},
		{"validated in the same transaction", []string{tx + `
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (event_type <> '') NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_type_check;` + down}, []string{"same transaction"}},
		{"UNIQUE built under the table's lock", []string{tx + `
ALTER TABLE devices ADD CONSTRAINT devices_ws_key UNIQUE (workspace_id, id);` + down}, []string{"USING INDEX"}},
		{"SET NOT NULL scans", []string{tx + `
ALTER TABLE events ALTER COLUMN occurred_at SET NOT NULL;` + down}, []string{"SET NOT NULL"}},
		{"column type change", []string{tx + `
ALTER TABLE events ALTER COLUMN event_type TYPE varchar(100);` + down}, []string{"rewrites"}},
		{"volatile default", []string{tx + `
ALTER TABLE events ADD COLUMN uid uuid DEFAULT gen_random_uuid();` + down}, []string{"rewrites"}},
		{"serial column", []string{tx + `
ALTER TABLE access_codes ADD COLUMN seq bigserial;` + down}, []string{"rewrites"}},
		{"stored generated column", []string{tx + `
ALTER TABLE events ADD COLUMN kind text GENERATED ALWAYS AS (split_part(event_type, '.', 1)) STORED;` + down}, []string{"rewrites"}},
		{"UPDATE of an existing table", []string{tx + `
UPDATE access_codes SET unconfirmed_since = deleted_at WHERE deletion_state = 'delayed';` + down}, []string{"batches"}},
		{"DELETE from an existing table", []string{tx + `
DELETE FROM events WHERE event_type = 'x';` + down}, []string{"batches"}},
		{"not re-runnable in a NO TRANSACTION file", []string{noTx + `
ALTER TABLE events ADD COLUMN note text;` + down}, []string{"re-run"}},
		{"constraint added twice by a re-run", []string{noTx + `
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (event_type <> '') NOT VALID;
ALTER TABLE events VALIDATE CONSTRAINT events_type_check;` + down}, []string{"re-run"}},
		{"validated before it is added", []string{noTx + `
ALTER TABLE events VALIDATE CONSTRAINT events_type_check;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (event_type <> '') NOT VALID;` + down}, []string{"never validated"}},
		{"DROP without IF EXISTS in a NO TRANSACTION file", []string{noTx + `
DROP INDEX CONCURRENTLY events_pin_idx;` + down}, []string{"IF EXISTS"}},
		{"no Down section", []string{tx + "ALTER TABLE events ADD COLUMN note text;"}, []string{"Down"}},
		{"VACUUM FULL", []string{noTx + "VACUUM FULL events;" + down}, []string{"rewrites"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var files []migFile
			for i, src := range c.files {
				v := int64(exemptThrough + 1 + i)
				files = append(files, migFile{name: fmt.Sprintf("%05d_sample.sql", v), version: v, src: src})
			}
			got := checkMigrations(files)
			if len(c.want) == 0 && len(got) > 0 {
				t.Errorf("good migration refused:\n%s", strings.Join(got, "\n"))
			}
			for _, w := range c.want {
				found := false
				for _, p := range got {
					found = found || strings.Contains(p, w)
				}
				if !found {
					t.Errorf("no problem mentions %q; got:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}

	// The migrations that stalled ingest would not pass today.
	for _, f := range migrationFiles(t, migrations.FS) {
		if f.version != 6 && f.version != 8 {
			continue
		}
		f.version = exemptThrough + 1
		joined := strings.Join(checkMigrations([]migFile{f}), "\n")
		for _, w := range []string{"lock_timeout", "CREATE INDEX on events is not CONCURRENTLY", "batches"} {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: no problem mentions %q; got:\n%s", f.name, w, joined)
			}
		}
	}
}

type migFile struct {
	name    string
	version int64
	src     string
}

// migrationFiles reads the goose SQL files of fsys's directory ".".
func migrationFiles(t testing.TB, fsys fs.FS) []migFile {
	t.Helper()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var out []migFile
	for _, n := range names {
		v, err := strconv.ParseInt(strings.SplitN(n, "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: no version number: %v", n, err)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, migFile{name: n, version: v, src: string(b)})
	}
	return out
}

// maxLockTimeout caps a migration's lock_timeout: while a DDL statement
// waits for its lock, every write to the table queues behind it, so ingest
// can stall for up to this long.
const maxLockTimeout = 5 * time.Second

// statement is one SQL statement of a migration.
type statement struct {
	raw string // as written, with the comments before it
	// sql is the statement in lower case, without comments, with string
	// literals and dollar-quoted bodies emptied and single spaces: what the
	// rules match.
	sql string
}

type parsedMigration struct {
	noTx           bool
	up, down       []statement
	hasUp, hasDown bool
}

// parseMigration splits a goose SQL file into its sections' statements.
func parseMigration(src string) parsedMigration {
	var p parsedMigration
	var section *[]statement
	var buf strings.Builder
	inBlock := false
	flush := func() {
		if section != nil {
			*section = append(*section, splitStatements(buf.String())...)
		}
		buf.Reset()
	}
	for _, line := range strings.SplitAfter(src, "\n") {
		trimmed := strings.ToLower(strings.TrimSpace(line))
		if strings.HasPrefix(trimmed, "-- +goose ") {
			switch strings.TrimSpace(strings.TrimPrefix(trimmed, "-- +goose ")) {
			case "no transaction":
				p.noTx = true
			case "up":
				flush()
				section, p.hasUp = &p.up, true
			case "down":
				flush()
				section, p.hasDown = &p.down, true
			case "statementbegin":
				flush()
				inBlock = true
			case "statementend":
				if section != nil && inBlock {
					*section = append(*section, statement{raw: buf.String(), sql: cleanSQL(buf.String())})
				}
				buf.Reset()
				inBlock = false
			}
			continue
		}
		buf.WriteString(line)
	}
	flush()
	return p
}

// splitStatements splits src at semicolons outside quotes, comments and
// dollar quotes; comments before a statement stay in its raw text.
func splitStatements(src string) []statement {
	var out []statement
	start := 0
	emit := func(end int) {
		raw := src[start:end]
		if s := cleanSQL(raw); s != "" {
			out = append(out, statement{raw: raw, sql: s})
		}
		start = end + 1
	}
	for i := 0; i < len(src); i++ {
		switch {
		case strings.HasPrefix(src[i:], "--"):
			i += strings.IndexByte(src[i:]+"\n", '\n')
		case strings.HasPrefix(src[i:], "/*"):
			i += strings.Index(src[i:]+"*/", "*/") + 1
		case src[i] == '\'' || src[i] == '"':
			i += strings.IndexByte(src[i+1:]+string(src[i]), src[i]) + 1
		case src[i] == '$':
			if tag := dollarTag.FindString(src[i:]); tag != "" {
				i += len(tag) + strings.Index(src[i+len(tag):]+tag, tag) + len(tag) - 1
			}
		case src[i] == ';':
			emit(i)
		}
	}
	emit(len(src))
	return out
}

var dollarTag = regexp.MustCompile(`^\$[a-zA-Z_]*\$`)

// cleanSQL drops comments, empties literals and bodies, lower-cases and
// collapses spaces.
func cleanSQL(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		switch {
		case strings.HasPrefix(raw[i:], "--"):
			i += strings.IndexByte(raw[i:]+"\n", '\n')
			b.WriteByte(' ')
		case strings.HasPrefix(raw[i:], "/*"):
			i += strings.Index(raw[i:]+"*/", "*/") + 1
			b.WriteByte(' ')
		case raw[i] == '\'':
			end := strings.IndexByte(raw[i+1:]+"'", '\'')
			b.WriteString("'" + lockTimeoutLiteral(raw[i+1:i+1+end]) + "'")
			i += end + 1
		case raw[i] == '$':
			if tag := dollarTag.FindString(raw[i:]); tag != "" {
				end := strings.Index(raw[i+len(tag):]+tag, tag)
				b.WriteString("$$")
				i += len(tag) + end + len(tag) - 1
				continue
			}
			b.WriteByte('$')
		case raw[i] == ';':
		default:
			b.WriteByte(raw[i])
		}
	}
	return strings.Join(strings.Fields(strings.ToLower(b.String())), " ")
}

// lockTimeoutLiteral keeps a literal that could be a duration (SET
// lock_timeout = '5s' needs it) and empties every other one, so that no
// rule matches words inside a string.
func lockTimeoutLiteral(s string) string {
	if durationLiteral.MatchString(strings.TrimSpace(s)) {
		return strings.TrimSpace(s)
	}
	return ""
}

var durationLiteral = regexp.MustCompile(`^[0-9.]+ ?(us|ms|s|min|h|d)?$`)

const ident = `("[^"]+"|[a-z0-9_$.]+)`

var (
	reSetLockTimeout = regexp.MustCompile(`^set (local |session )?lock_timeout( to | ?= ?)(.+)$`)
	reCreateTable    = regexp.MustCompile(`^create (unlogged |temporary |temp )?table (if not exists )?` + ident)
	reCreateIndex    = regexp.MustCompile(`^create (unique )?index (concurrently )?(if not exists )?(` + ident + ` )?on (only )?` + ident)
	reDropIndex      = regexp.MustCompile(`^drop index (concurrently )?(if exists )?(.+?)( cascade| restrict)?$`)
	reAlterTable     = regexp.MustCompile(`^alter table (if exists )?(only )?` + ident + ` (.+)$`)
	reUpdate         = regexp.MustCompile(`^update (only )?` + ident)
	reDelete         = regexp.MustCompile(`^delete from (only )?` + ident)
	reBounded        = regexp.MustCompile(`--\s*rules:\s*bounded\b[:\s]*\S`)
	reAddCheckFK     = regexp.MustCompile(`^add (constraint ` + ident + ` )?(check|foreign key)\b`)
	reAddUnique      = regexp.MustCompile(`^add (constraint ` + ident + ` )?(unique|primary key|exclude)\b`)
	reAddColumn      = regexp.MustCompile(`^add (column )?(if not exists )?` + ident + ` (.+)$`)
	reAlterType      = regexp.MustCompile(`^alter (column )?` + ident + ` (set data )?type `)
	reSetNotNull     = regexp.MustCompile(`^alter (column )?` + ident + ` set not null`)
	reValidate       = regexp.MustCompile(`^validate constraint ` + ident)
	reRewriteAction  = regexp.MustCompile(`^set (logged|unlogged|tablespace)\b`)
	reRewriteStmt    = regexp.MustCompile(`^(vacuum \(?full|cluster\b|reindex |refresh materialized view )`)
	// Defaults evaluated per row: adding such a column rewrites the table.
	reVolatileDefault = regexp.MustCompile(`\bdefault .*\b(random|gen_random_uuid|uuid_generate_v[14]|clock_timestamp|timeofday|nextval)\s*\(`)
	reRewritingColumn = regexp.MustCompile(`^(small|big)?serial\b|\bgenerated (always|by default) as (identity|\(.*\) stored)`)
	// Statements that a NO TRANSACTION file may run twice; ALTER TABLE is
	// checked action by action.
	reRerunnable      = regexp.MustCompile(`^(set |reset |select |analyze\b|create (unique )?index concurrently |drop index concurrently if exists |alter index if exists )`)
	reRerunnableAlter = regexp.MustCompile(`^(validate constraint |drop constraint if exists |drop column if exists |add column if not exists )`)
	reDropConstraint  = regexp.MustCompile(`^drop constraint if exists ` + ident)
)

func name(s string) string { return strings.TrimPrefix(strings.Trim(s, `"`), "public.") }

// checkMigrations applies the rules to files (in version order) and returns
// the problems, each naming its file.
func checkMigrations(files []migFile) []string {
	var problems []string
	// where is a statement of an Up section.
	type where struct {
		file    string
		version int64
		i       int
		noTx    bool
	}
	notValid := map[string]where{}    // table.constraint added NOT VALID
	validated := map[string][]where{} // table.constraint validated
	for _, f := range files {
		p := parseMigration(f.src)
		report := func(section string, i int, format string, args ...any) {
			where := f.name
			if i >= 0 {
				where += fmt.Sprintf(": %s statement %d", section, i+1)
			}
			problems = append(problems, where+": "+fmt.Sprintf(format, args...))
		}
		if !p.hasUp {
			report("", -1, "no -- +goose Up section")
		}
		if !p.hasDown {
			report("", -1, "no -- +goose Down section: keep one, a rollback needs it")
		}
		// Tables this migration creates, and the indexes on them: empty,
		// so nothing done to them can stall anyone.
		newTables, newIndexes := map[string]bool{}, map[string]bool{}
		for _, s := range p.up {
			if m := reCreateTable.FindStringSubmatch(s.sql); m != nil {
				newTables[name(m[3])] = true
			}
			if m := reCreateIndex.FindStringSubmatch(s.sql); m != nil && newTables[name(m[7])] {
				newIndexes[name(m[5])] = true
			}
		}
		for _, sec := range []struct {
			name  string
			stmts []statement
		}{{"Up", p.up}, {"Down", p.down}} {
			timeoutSet := false
			dropped := map[string]bool{} // indexes and table.constraints dropped IF EXISTS so far
			touched := map[string]bool{} // tables locked so far in this section
			validatedHere := map[string]bool{}
			for i, s := range sec.stmts {
				r := func(format string, args ...any) { report(sec.name, i, format, args...) }
				if m := reSetLockTimeout.FindStringSubmatch(s.sql); m != nil {
					local := m[1] == "local "
					switch {
					case p.noTx && local:
						r("SET LOCAL has no effect outside a transaction block: in a NO TRANSACTION file, SET lock_timeout")
					case !p.noTx && !local:
						r("SET lock_timeout in a transactional migration outlives it on the session: use SET LOCAL lock_timeout")
					}
					if d, ok := parseTimeout(m[3]); !ok || d <= 0 || d > maxLockTimeout {
						r("lock_timeout %s: set it between 1ms and %s (writes queue behind a DDL statement waiting for its lock)", m[3], maxLockTimeout)
					}
					timeoutSet = true
					continue
				}
				if strings.HasPrefix(s.sql, "set ") || strings.HasPrefix(s.sql, "reset ") {
					continue
				}
				if !timeoutSet {
					r("sets no lock_timeout before its first statement (begin each section with SET LOCAL lock_timeout = '5s', or SET lock_timeout in a NO TRANSACTION file)")
					timeoutSet = true // once per section
				}
				notRerunnable := func(what string) {
					r("a NO TRANSACTION migration that fails part-way is re-run from its first statement (goose records it only once every statement succeeded), so each statement must be safe to run twice (see README.md): put %q in a transactional migration", firstWords(what))
				}
				if p.noTx && !reRerunnable.MatchString(s.sql) && !reAlterTable.MatchString(s.sql) {
					notRerunnable(s.sql)
				}
				if reRewriteStmt.MatchString(s.sql) && !strings.Contains(s.sql, " concurrently ") {
					r("%q rewrites or locks a whole table", firstWords(s.sql))
				}
				if m := reCreateIndex.FindStringSubmatch(s.sql); m != nil {
					concurrently, idx, table := m[2] != "", name(m[5]), name(m[7])
					switch {
					case newTables[table]:
					case !concurrently:
						r("CREATE INDEX on %s is not CONCURRENTLY: it blocks every write to the table for the whole build; build it CONCURRENTLY in a -- +goose NO TRANSACTION file", table)
					case !p.noTx:
						r("CREATE INDEX CONCURRENTLY cannot run in a transaction: mark the file -- +goose NO TRANSACTION")
					case idx == "":
						r("CREATE INDEX CONCURRENTLY needs a name, for the DROP INDEX CONCURRENTLY IF EXISTS before it")
					case !dropped[idx]:
						r("a failed CREATE INDEX CONCURRENTLY leaves an INVALID index %s behind, and the re-run then fails (or skips it, with IF NOT EXISTS): precede it with DROP INDEX CONCURRENTLY IF EXISTS %s", idx, idx)
					}
					touched[table] = true
				}
				if m := reDropIndex.FindStringSubmatch(s.sql); m != nil {
					concurrently := m[1] != ""
					for _, n := range strings.Split(m[3], ",") {
						idx := name(strings.TrimSpace(n))
						switch {
						case !concurrently && !newIndexes[idx]:
							r("DROP INDEX %s locks its table against reads and writes: use DROP INDEX CONCURRENTLY IF EXISTS in a NO TRANSACTION file", idx)
						case concurrently && !p.noTx:
							r("DROP INDEX CONCURRENTLY cannot run in a transaction: mark the file -- +goose NO TRANSACTION")
						case concurrently && m[2] == "":
							r("DROP INDEX CONCURRENTLY %s without IF EXISTS fails when the file is re-run", idx)
						}
						if m[2] != "" {
							dropped[idx] = true
						}
					}
				}
				table := ""
				if m := reUpdate.FindStringSubmatch(s.sql); m != nil {
					table = name(m[2])
				} else if m := reDelete.FindStringSubmatch(s.sql); m != nil {
					table = name(m[2])
				}
				if table != "" {
					if !newTables[table] && !reBounded.MatchString(s.raw) {
						r("%s of %s inside the migration's transaction locks every row it changes until the end, and the table may be big: backfill in batches from the service (each batch its own transaction), or say why it is small with a comment -- rules: bounded: <why> before it", strings.ToUpper(strings.Fields(s.sql)[0]), table)
					}
					touched[table] = true
				}
				m := reAlterTable.FindStringSubmatch(s.sql)
				if m == nil {
					continue
				}
				table = name(m[3])
				for _, action := range splitTopLevel(m[4]) {
					if p.noTx {
						c := reAddCheckFK.FindStringSubmatch(action)
						switch {
						case reRerunnableAlter.MatchString(action):
						case c != nil && c[2] != "" && dropped[table+"."+name(c[2])]:
						default:
							notRerunnable("ALTER TABLE " + table + " " + action)
						}
						if d := reDropConstraint.FindStringSubmatch(action); d != nil {
							dropped[table+"."+name(d[1])] = true
						}
					}
					if v := reValidate.FindStringSubmatch(action); v != nil {
						key := table + "." + name(v[1])
						if !p.noTx && touched[table] {
							r("VALIDATE CONSTRAINT %s runs in the same transaction as an earlier statement that locked %s, which holds its lock through the whole scan: validate in a NO TRANSACTION file or a later migration", name(v[1]), table)
						}
						if sec.name == "Up" {
							validated[key] = append(validated[key], where{f.name, f.version, i, p.noTx})
							validatedHere[table] = true
						}
						continue
					}
					touched[table] = true
					if newTables[table] {
						continue
					}
					switch {
					case reAddCheckFK.MatchString(action):
						c := reAddCheckFK.FindStringSubmatch(action)
						switch {
						case !strings.HasSuffix(action, " not valid"):
							r("ADD %s on %s checks every row while holding the table's lock: add it NOT VALID, then VALIDATE CONSTRAINT in a later statement", strings.ToUpper(c[3]), table)
						case c[2] == "":
							r("a NOT VALID constraint needs a name, for its VALIDATE CONSTRAINT")
						case sec.name == "Up":
							notValid[table+"."+name(c[2])] = where{f.name, f.version, i, p.noTx}
						}
					case reAddUnique.MatchString(action) && !strings.Contains(action, " using index "):
						r("ADD UNIQUE / PRIMARY KEY / EXCLUDE on %s builds its index under the table's lock: build a unique index CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX", table)
					case reAddColumn.MatchString(action) && !strings.HasPrefix(action, "add constraint "):
						def := reAddColumn.FindStringSubmatch(action)[4]
						if strings.Contains(" "+def, " references ") || strings.Contains(" "+def, " check ") || strings.Contains(" "+def, " check(") {
							r("a column added with a CHECK or REFERENCES is checked at once against every row under the table's lock: add the column, then the constraint NOT VALID, then VALIDATE CONSTRAINT")
						}
						if reVolatileDefault.MatchString(def) || reRewritingColumn.MatchString(def) {
							r("adding column %q rewrites %s under its lock (a default computed per row, a serial, identity or stored generated column): add it without, and fill it in batches", firstWords(def), table)
						}
					case reAlterType.MatchString(action):
						r("ALTER COLUMN ... TYPE rewrites %s (and its indexes) under its lock: add a new column, fill it in batches, and switch over in a later release", table)
					case reSetNotNull.MatchString(action) && !validatedHere[table]:
						r("SET NOT NULL on %s scans it under its lock: add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (which then skips the scan) after the VALIDATE", table)
					case reRewriteAction.MatchString(action):
						r("ALTER TABLE %s %s rewrites the table under its lock", table, strings.ToUpper(action))
					}
				}
			}
		}
	}
	keys := make([]string, 0, len(notValid))
	for k := range notValid {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		c := notValid[key]
		ok := false
		for _, v := range validated[key] {
			// Later, or later in the same NO TRANSACTION file (each
			// statement its own transaction).
			ok = ok || v.version > c.version || v.version == c.version && c.noTx && v.i > c.i
		}
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: constraint %s is added NOT VALID and never validated: VALIDATE CONSTRAINT it in a later statement of a NO TRANSACTION file, or in a later migration; until then it checks new rows only", c.file, key))
		}
	}
	return problems
}

// splitTopLevel splits ALTER TABLE's actions at commas outside parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// parseTimeout reads a lock_timeout value: a number of milliseconds, or a
// quoted number with a unit.
func parseTimeout(v string) (time.Duration, bool) {
	v = strings.TrimSpace(strings.Trim(strings.TrimSpace(v), "'"))
	m := regexp.MustCompile(`^([0-9.]+) ?(us|ms|s|min|h|d)?$`).FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	unit := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
	return time.Duration(n * float64(unit)), true
}

func firstWords(s string) string {
	f := strings.Fields(s)
	if len(f) > 6 {
		f = append(f[:6], "...")
	}
	return strings.Join(f, " ")
}
