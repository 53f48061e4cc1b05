package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

func init() {
	subcommands["version"] = subcommand{summary: "print the version and the Go version", run: runVersion}
}

func runVersion(_ context.Context, args []string, _ map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "",
		`Version prints the version of this binary: its module version when it was
installed with "go install ...@version", else the commit it was built from,
else "devel"; then the Go version that built it.`)
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

// buildVersion names the build: the module version from go install, else
// the VCS revision stamped by go build in a checkout, else "devel".
func buildVersion(info *debug.BuildInfo) string {
	if info == nil {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}
