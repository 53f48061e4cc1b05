package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs the binary's run with args and returns the exit code, stdout
// and stderr.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, env, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSubcommandHelp(t *testing.T) {
	tests := []struct {
		name    string
		command string
		flags   []string
	}{
		{"sign", "sign", []string{"-key"}},
		{"send", "send", []string{"-url", "-reference", "-amount", "-live", "-data-object", "-print", "-key"}},
		{"tail", "tail", []string{"-url", "-count", "-reader"}},
		{"version", "version", nil},
	}
	for _, tt := range tests {
		for _, help := range []string{"-h", "--help", "-help"} {
			t.Run(tt.name+" "+help, func(t *testing.T) {
				code, stdout, stderr := runCLI(t, nil, "", tt.command, help)
				if code != exitOK || stderr != "" {
					t.Fatalf("exit %d, stderr %q: want 0 and nothing on stderr", code, stderr)
				}
				if !strings.HasPrefix(stdout, "Usage: senfenico-bridge "+tt.command) {
					t.Fatalf("help does not start with a usage line:\n%s", stdout)
				}
				for _, f := range tt.flags {
					if !strings.Contains(stdout, "  "+f+" ") && !strings.Contains(stdout, "  "+f+"\n") {
						t.Errorf("help does not list %s:\n%s", f, stdout)
					}
				}
			})
		}
		t.Run(tt.name+" listed in the main usage", func(t *testing.T) {
			var buf bytes.Buffer
			usage(&buf)
			if !strings.Contains(buf.String(), "  "+tt.command+" ") {
				t.Fatalf("%s missing from:\n%s", tt.command, buf.String())
			}
		})
	}
}

func TestSubcommandBadFlag(t *testing.T) {
	for _, command := range []string{"sign", "send", "tail", "version"} {
		t.Run(command, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, map[string]string{"SENFENICO_WEBHOOK_KEYS": "k"}, "", command, "--no-such-flag")
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != exitUsage || stdout != "" || len(lines) != 2 ||
				!strings.Contains(lines[0], "no-such-flag") || !strings.Contains(lines[1], command+" --help") {
				t.Fatalf("exit %d, stdout %q, stderr %q: want exit 2, the error and a pointer to --help", code, stdout, stderr)
			}
		})
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantPos  []string
		wantLive bool
	}{
		{"flags first", []string{"--live", "a.b"}, []string{"a.b"}, true},
		{"flags after", []string{"a.b", "--live"}, []string{"a.b"}, true},
		{"mixed", []string{"a", "--live", "b"}, []string{"a", "b"}, true},
		{"double dash ends flags", []string{"--", "--live"}, []string{"--live"}, false},
		{"none", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFlagSet("x", "", "")
			live := fs.Bool("live", false, "")
			pos, _, ok := parseFlags(fs, tt.args, &bytes.Buffer{}, &bytes.Buffer{})
			if !ok || strings.Join(pos, "|") != strings.Join(tt.wantPos, "|") || *live != tt.wantLive {
				t.Fatalf("got %q live=%v ok=%v, want %q live=%v", pos, *live, ok, tt.wantPos, tt.wantLive)
			}
		})
	}
}

func TestLocalAddr(t *testing.T) {
	tests := []struct{ name, listen, want string }{
		{"port only", ":8080", "127.0.0.1:8080"},
		{"IPv4 wildcard", "0.0.0.0:9000", "127.0.0.1:9000"},
		{"IPv6 wildcard", "[::]:9001", "127.0.0.1:9001"},
		{"IPv6 loopback", "[::1]:9002", "[::1]:9002"},
		{"host name", "bridge.internal:80", "bridge.internal:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := localAddr(tt.listen); got != tt.want {
				t.Fatalf("localAddr(%q) = %q, want %q", tt.listen, got, tt.want)
			}
		})
	}
}
