package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

func version(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version")
	err := parseNoArgs(fs, "version", args, stdout,
		"usage: codewatch version\n\nPrints codewatch's module version, the commit it was built from (and whether\nthe working tree had uncommitted changes), and the Go version.")
	if err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	fmt.Fprint(stdout, versionText(bi, ok))
	return nil
}

// versionText says what ReadBuildInfo knows. The commit is there when the
// binary was built by go build from a git checkout (-buildvcs, on by
// default); go run, -buildvcs=false and a copy of the source without .git
// leave it out.
func versionText(bi *debug.BuildInfo, ok bool) string {
	mod, goVersion := "unknown", runtime.Version()
	s := map[string]string{}
	if ok && bi != nil {
		if bi.Main.Version != "" {
			mod = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, kv := range bi.Settings {
			s[kv.Key] = kv.Value
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "codewatch %s\n", mod)
	switch rev := s["vcs.revision"]; {
	case rev == "":
		b.WriteString("revision: unknown (built without version control information)\n")
	case s["vcs.modified"] == "true":
		fmt.Fprintf(&b, "revision: %s (modified: built with uncommitted changes)\n", rev)
	case s["vcs.modified"] == "false":
		fmt.Fprintf(&b, "revision: %s (clean)\n", rev)
	default:
		fmt.Fprintf(&b, "revision: %s\n", rev)
	}
	if t := s["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "committed: %s\n", t)
	}
	fmt.Fprintf(&b, "go: %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
