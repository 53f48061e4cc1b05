package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheckTimeout bounds one probe. Docker's default HEALTHCHECK timeout is
// 30 s; answering well inside it keeps a hung server from looking merely slow.
const healthcheckTimeout = 2 * time.Second

func init() {
	subcommands["healthcheck"] = subcommand{
		summary: "exit 0 if the local bridge's /readyz answers 200 (for container HEALTHCHECKs)",
		run:     runHealthcheck,
	}
}

// runHealthcheck exists because the container image has no shell, curl or
// wget. Every failure exits 1, usage errors included: Docker reserves exit
// status 2 of a HEALTHCHECK command.
func runHealthcheck(ctx context.Context, args []string, env map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSetExits("healthcheck", "",
		`Healthcheck GETs /readyz on the bridge running on this machine (or in this
container), at the port of LISTEN_ADDR (default :8080), and exits 0 if it
answers 200 within 2s, else 1. /readyz answers 200 only while the sinks can
publish.`,
		`Exit status:
  0  the bridge is ready
  1  anything else, a wrong command line included: Docker reserves status 2
     of a HEALTHCHECK command`)
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		if code == exitOK {
			return exitOK
		}
		return exitFailed
	}
	if len(pos) > 0 {
		usageError(stderr, "healthcheck", "takes no arguments, got %q", pos)
		return exitFailed
	}
	url, err := readyzURL(env)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge healthcheck: %v\n", err)
		return exitFailed
	}
	if err := probeReady(ctx, url, healthcheckTimeout); err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge healthcheck: %v\n", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, "ready")
	return exitOK
}

// readyzURL is where a process on the same machine reaches the /readyz of
// the server that LISTEN_ADDR in env describes.
func readyzURL(env map[string]string) (string, error) {
	// Only LISTEN_ADDR is read, not the whole configuration: the probe must
	// not fail because, say, the webhook keys are not in its environment.
	listen := env["LISTEN_ADDR"]
	if listen == "" {
		listen = ":8080"
	}
	_, port, err := net.SplitHostPort(listen)
	if err == nil && port == "" {
		err = errors.New("no port")
	}
	if err != nil {
		return "", fmt.Errorf("LISTEN_ADDR %q: %w", listen, err)
	}
	return "http://" + localAddr(listen) + "/readyz", nil
}

// probeReady returns nil if url answers 200 within timeout.
func probeReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No proxy: the target is local, and an HTTP_PROXY set for the bridge's
	// own traffic must not intercept the probe.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
