package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
)

// newFlagSet returns the FlagSet of a subcommand. Its help follows go help:
// a usage line, one paragraph, the flags with their defaults, then the exit
// statuses every command shares.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	return newFlagSetExits(name, synopsis, about, exitStatusHelp)
}

// newFlagSetExits is newFlagSet for a command whose exit statuses differ
// from the shared ones.
func newFlagSetExits(name, synopsis, about, exits string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: senfenico-bridge %s\n\n%s\n", strings.TrimSpace(name+" "+synopsis), about)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
		fmt.Fprintf(w, "\n%s\n", exits)
	}
	return fs
}

// parseFlags parses args, letting flags come before or after the positional
// arguments ("send charge.success --live"), which the flag package alone
// does not. When ok is false the caller returns code: help went to stdout
// (exit 0), or one error line and a pointer to --help went to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (positional []string, code int, ok bool) {
	// The flag package prints its errors and the whole usage to Output; one
	// line on stderr is easier to read, so printing is done here instead.
	fs.SetOutput(io.Discard)
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, exitOK, false
		}
		if err != nil {
			fmt.Fprintf(stderr, "senfenico-bridge %s: %v\nRun 'senfenico-bridge %s --help' for usage.\n", fs.Name(), err, fs.Name())
			return nil, exitUsage, false
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if len(rest) == 0 || (consumed > 0 && args[consumed-1] == "--") {
			return append(positional, rest...), exitOK, true
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError reports a wrong use of a command in one line, and exitUsage.
func usageError(stderr io.Writer, cmd, format string, a ...any) int {
	fmt.Fprintf(stderr, "senfenico-bridge %s: %s\nRun 'senfenico-bridge %s --help' for usage.\n", cmd, fmt.Sprintf(format, a...), cmd)
	return exitUsage
}

// signingKey returns the key to sign with: flagKey when given, else the
// first key of SENFENICO_WEBHOOK_KEYS, the one the bridge tries first. Keys
// are trimmed as the bridge trims them.
func signingKey(flagKey string, env map[string]string) (string, error) {
	if k := strings.TrimSpace(flagKey); k != "" {
		return k, nil
	}
	first, _, _ := strings.Cut(env["SENFENICO_WEBHOOK_KEYS"], ",")
	if k := strings.TrimSpace(first); k != "" {
		return k, nil
	}
	return "", errors.New("no key: set SENFENICO_WEBHOOK_KEYS (the bridge's keys, comma-separated; the first one signs) or pass --key")
}

// localAddr turns a listen address into one a client on this machine can
// dial: a wildcard or empty host becomes 127.0.0.1.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

const keyFlagHelp = "signing key, instead of the first key of SENFENICO_WEBHOOK_KEYS.\n" +
	"A key on the command line is kept in shell history and visible to other\n" +
	"users in the process list: prefer the environment variable"
