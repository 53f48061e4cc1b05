// Command waitkafka waits until a Kafka broker answers a metadata request
// with at least one registered broker, the sign that a KRaft node has caught
// up with its metadata log and accepts clients. start.sh runs it after
// launching the JVM.
//
//	waitkafka -addr 127.0.0.1:19092 -timeout 60s [-pid 1234]
//
// It exits 0 once the broker is ready, 1 on timeout, and 1 at once when the
// process given by -pid exits, so a broker that crashes on start fails fast.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	os.Exit(run())
}

func run() int {
	addr := flag.String("addr", "127.0.0.1:19092", "bootstrap address of the broker")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait")
	pid := flag.Int("pid", 0, "give up when this process exits (0: do not watch)")
	verbose := flag.Bool("v", false, "print every failed attempt")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	err := wait(ctx, *addr, *pid, *verbose)
	if err != nil {
		fmt.Fprintf(os.Stderr, "waitkafka: %s: %v\n", *addr, err)
		return 1
	}
	return 0
}

func wait(ctx context.Context, addr string, pid int, verbose bool) error {
	var last error
	for {
		if pid > 0 && !alive(pid) {
			return fmt.Errorf("process %d exited", pid)
		}
		res, err := probe(ctx, addr)
		switch {
		case err != nil:
			last = err
		case len(res.Brokers) == 0:
			last = errors.New("metadata lists no broker yet")
		default:
			return nil
		}
		if verbose {
			fmt.Fprintf(os.Stderr, "%s waitkafka: %v\n", time.Now().Format(time.TimeOnly+".000"), last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last error: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe sends one metadata request through a transport of its own: a
// kafka-go Transport caches a failed metadata fetch for up to its MetadataTTL
// (6 s by default) and answers Metadata from that cache, so reusing one would
// report "connection refused" for seconds after the broker came up.
func probe(ctx context.Context, addr string) (*kafka.MetadataResponse, error) {
	transport := &kafka.Transport{DialTimeout: time.Second}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
	attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return client.Metadata(attempt, &kafka.MetadataRequest{})
}

// alive reports whether pid exists and is not a zombie: the JVM started by
// start.sh stays a zombie child of the script until the script exits.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return i+2 >= len(stat) || stat[i+2] != 'Z'
		}
	}
	return true
}
