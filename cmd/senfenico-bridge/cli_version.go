package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

func init() {
	subcommands["version"] = subcommand{summary: "print the version, the commit it was built from and the Go version", run: runVersion}
}

func runVersion(_ context.Context, args []string, _ map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "",
		`Version prints one line about this binary: its module version ("(devel)"
when built from a checkout rather than by "go install ...@version"), the
commit it was built from ("rev", then "modified" when the tree had
uncommitted changes) and that commit's time, then the Go version.

"go build" records the commit only in a git checkout (not a git worktree,
nor with GOFLAGS=-buildvcs=false); "go run" never does. An image built
with "docker build --build-arg REVISION=$(git rev-parse HEAD)" names it
too. Without it the line says "rev unknown".`)
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "version", "takes no arguments, got %q", pos)
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintf(stdout, "senfenico-bridge %s %s\n", buildVersion(info), runtime.Version())
	return exitOK
}

// buildRevision names the commit when the go command could not record it:
// a container build has no .git in its context, so the Dockerfile passes
// the commit as a build argument (-ldflags "-X main.buildRevision=...").
var buildRevision string

// buildVersion describes the build from what the go command stamped in it:
// "v1.2.3", or "(devel) rev 0123456789ab 2026-12-01T10:00:00Z [modified]".
func buildVersion(info *debug.BuildInfo) string {
	if info == nil {
		// Only a binary built without module support lacks build info.
		return "(devel) rev unknown"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		rev = buildRevision
	}
	if rev == "" {
		// A release installed with go install names its commit in its
		// version already; anything else should say nothing was recorded.
		if version != "(devel)" {
			return version
		}
		return version + " rev unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	fields := []string{version, "rev", rev}
	if at != "" {
		fields = append(fields, at)
	}
	if modified {
		fields = append(fields, "modified")
	}
	return strings.Join(fields, " ")
}
