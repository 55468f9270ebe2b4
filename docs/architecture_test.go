// Package docs_test holds docs/architecture.md to the code: the packages it
// names are the module's packages, each imports only what its row allows,
// and every file and function stays small enough to read.
package docs_test

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/codewatch/codewatch/"

// rule is one row of the packages table: the package and what it may import
// (nil: any).
type rule struct {
	pkg     string
	allowed []string
	any     bool
	// anyBut is a package "any but" excludes.
	anyBut string
}

var cell = regexp.MustCompile("`([a-z][a-z0-9/]*)`")

// rules reads the packages table of architecture.md.
func rules(t *testing.T) map[string]rule {
	t.Helper()
	f, err := os.Open("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]rule{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) != 5 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`") {
			continue
		}
		name := cell.FindStringSubmatch(cols[1])
		if name == nil {
			t.Fatalf("a row without a package name: %s", sc.Text())
		}
		r := rule{pkg: name[1]}
		may := strings.TrimSpace(cols[3])
		switch {
		case may == "any":
			r.any = true
		case strings.HasPrefix(may, "any but "):
			r.any, r.anyBut = true, cell.FindStringSubmatch(may)[1]
		case may == "none":
		default:
			for _, m := range cell.FindAllStringSubmatch(may, -1) {
				r.allowed = append(r.allowed, m[1])
			}
		}
		if _, dup := out[r.pkg]; dup {
			t.Fatalf("%s has two rows", r.pkg)
		}
		out[r.pkg] = r
	}
	if len(out) < 10 {
		t.Fatalf("read %d packages from architecture.md's table", len(out))
	}
	return out
}

type listed struct {
	ImportPath string
	Dir        string
	Imports    []string
	GoFiles    []string
}

// packages lists the module's packages (go list ./..., from the module root).
func packages(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if len(p.GoFiles) > 0 { // a folder of tests only (this one) holds no package to place
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// The table names every package the module has, and only those.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	rs := rules(t)
	have := map[string]bool{}
	for _, p := range packages(t) {
		name := strings.TrimPrefix(p.ImportPath, module)
		have[name] = true
		if _, ok := rs[name]; !ok {
			t.Errorf("package %s is not in docs/architecture.md's table", name)
		}
	}
	for name := range rs {
		if !have[name] {
			t.Errorf("docs/architecture.md names %s, which is not a package", name)
		}
	}
}

// Each package imports only what its row allows.
func TestArchitectureImports(t *testing.T) {
	rs := rules(t)
	for _, p := range packages(t) {
		name := strings.TrimPrefix(p.ImportPath, module)
		r, ok := rs[name]
		if !ok {
			continue // reported by TestArchitectureNamesEveryPackage
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			switch {
			case r.any && dep != r.anyBut:
			case slices.Contains(r.allowed, dep):
			default:
				t.Errorf("%s imports %s, which its row in docs/architecture.md does not allow", name, dep)
			}
		}
	}
}

// No non-test Go file over 600 lines and no function (or function literal)
// over 150: a newcomer reads a file at a sitting and a function on a screen
// or two.
func TestSmallEnoughToRead(t *testing.T) {
	const maxFile, maxFunc = 600, 150
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packages(t) {
		for _, name := range p.GoFiles {
			path := filepath.Join(p.Dir, name)
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, path)
			if n := fset.Position(f.End()).Line; n > maxFile {
				t.Errorf("%s: %d lines (at most %d)", rel, n, maxFile)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				var what string
				switch fn := n.(type) {
				case *ast.FuncDecl:
					what = fn.Name.Name
				case *ast.FuncLit:
					what = "a function literal"
				default:
					return true
				}
				from, to := fset.Position(n.Pos()).Line, fset.Position(n.End()).Line
				if to-from+1 > maxFunc {
					t.Errorf("%s:%d: %s is %d lines (at most %d)", rel, from, what, to-from+1, maxFunc)
				}
				return true
			})
		}
	}
}
