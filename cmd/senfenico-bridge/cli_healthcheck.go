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
// wget. Every failure exits 1, never 2: Docker reserves exit status 2 of a
// HEALTHCHECK command.
func runHealthcheck(ctx context.Context, args []string, env map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			fmt.Fprint(stdout, `Usage: senfenico-bridge healthcheck

GETs /readyz on the bridge running in this container or host, at the port of
LISTEN_ADDR (default :8080), and exits 0 if it answers 200 within 2s, else 1.
`)
			return exitOK
		}
		fmt.Fprintf(stderr, "senfenico-bridge healthcheck: takes no arguments, got %q\n", args)
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

// readyzURL is where a process on the same host reaches the server that
// LISTEN_ADDR in env describes: a wildcard address is reached through
// loopback, a specific one only through itself.
func readyzURL(env map[string]string) (string, error) {
	// Only LISTEN_ADDR is read, not the whole configuration: the probe must
	// not fail because, say, the webhook keys are not in its environment.
	listen := env["LISTEN_ADDR"]
	if listen == "" {
		listen = ":8080"
	}
	host, port, err := net.SplitHostPort(listen)
	if err == nil && port == "" {
		err = errors.New("no port")
	}
	if err != nil {
		return "", fmt.Errorf("LISTEN_ADDR %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
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
