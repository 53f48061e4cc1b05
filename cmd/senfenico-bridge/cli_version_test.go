package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "", "version")
	if code != exitOK || stderr != "" || !regexp.MustCompile(`^senfenico-bridge \S+ rev \S+.* go1\.\S+\n$`).MatchString(stdout) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, _ := runCLI(t, nil, "", "version", "extra"); code != exitUsage {
		t.Fatalf("version with an argument: exit %d, want 2", code)
	}
}

func TestBuildVersion(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: modified},
		}
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "(devel) rev unknown"},
		{"go install at a version", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3"},
		{"built in a clean checkout", &debug.BuildInfo{
			Main: debug.Module{Version: "v0.0.0-20261201100000-0123456789ab"}, Settings: vcs("false"),
		}, "v0.0.0-20261201100000-0123456789ab rev 0123456789ab 2026-12-01T10:00:00Z"},
		{"built with local changes", &debug.BuildInfo{
			Main: debug.Module{Version: "v0.0.0-20261201100000-0123456789ab+dirty"}, Settings: vcs("true"),
		}, "v0.0.0-20261201100000-0123456789ab+dirty rev 0123456789ab 2026-12-01T10:00:00Z modified"},
		{"revision without a module version", &debug.BuildInfo{
			Main: debug.Module{Version: "(devel)"}, Settings: vcs("false"),
		}, "(devel) rev 0123456789ab 2026-12-01T10:00:00Z"},
		{"built outside version control", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel) rev unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildVersion(tt.info); got != tt.want {
				t.Fatalf("buildVersion = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("revision passed at link time", func(t *testing.T) {
		defer func(saved string) { buildRevision = saved }(buildRevision)
		buildRevision = rev
		info := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
		if got, want := buildVersion(info), "(devel) rev 0123456789ab"; got != want {
			t.Fatalf("buildVersion = %q, want %q", got, want)
		}
		// What the go command records wins over the argument.
		info.Settings = vcs("false")
		if got, want := buildVersion(info), "(devel) rev 0123456789ab 2026-12-01T10:00:00Z"; got != want {
			t.Fatalf("buildVersion = %q, want %q", got, want)
		}
	})
}

// TestVersionFromLinkerFlag builds the binary as the Dockerfile does, with
// no version control information and the commit passed to the linker, and
// checks that version names it.
func TestVersionFromLinkerFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const rev = "fedcba9876543210fedcba9876543210fedcba98"
	// The Dockerfile's -trimpath and CGO_ENABLED=0 are left out: they do not
	// change what the linker flag does, and would rebuild every package.
	out := buildAndRunVersion(t, ".", "GOFLAGS=-buildvcs=false", "-ldflags=-s -w -X main.buildRevision="+rev, ".")
	if !regexp.MustCompile(`^senfenico-bridge \S+ rev fedcba987654 go1\.\S+\n$`).Match(out) {
		t.Fatalf("version printed %q, want the commit passed to the linker", out)
	}
}

// TestVersionOfACleanCheckout builds the binary the way the README says, in
// a fresh clone, and checks that version names the commit: what the go
// command stamps is what a newcomer sees, not a test double. The clone gets
// this package as it is on disk, committed, so the code under test is the
// edited one and the tree is clean.
func TestVersionOfACleanCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary in a fresh clone")
	}
	for _, tool := range []string{"git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@invalid"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	root := git(".", "rev-parse", "--show-toplevel")
	clone := filepath.Join(t.TempDir(), "clone")
	git(".", "clone", "--quiet", "--no-hardlinks", root, clone)
	pkg := filepath.Join(clone, "cmd", "senfenico-bridge")
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files here: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(clone, "add", "-A")
	git(clone, "commit", "--quiet", "--allow-empty", "-m", "the package under test")
	rev := git(clone, "rev-parse", "HEAD")[:12]

	// A machine-wide GOFLAGS=-buildvcs=false would hide what a newcomer's
	// default build records.
	out := buildAndRunVersion(t, clone, "GOFLAGS=-buildvcs=true", "./cmd/senfenico-bridge")
	want := regexp.MustCompile(`^senfenico-bridge v0\.0\.0-\d{14}-` + rev + ` rev ` + rev + ` \d{4}-\d\d-\d\dT\S+Z go1\.\S+\n$`)
	if !want.Match(out) {
		t.Fatalf("version of a clean checkout at %s printed %q", rev, out)
	}
}

// buildAndRunVersion runs "go build" in dir with the extra environment
// variable and the build arguments (flags, then the package), and returns
// what the binary's version command prints.
func buildAndRunVersion(t *testing.T, dir, env string, args ...string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "senfenico-bridge")
	build := exec.Command("go", append([]string{"build", "-o", bin}, args...)...)
	build.Dir = dir
	build.Env = append(os.Environ(), env)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	return out
}
