// Command senfenico-ceiling is the yardstick the bridge's throughput is
// compared with: a bare net/http server that does the least any correct
// webhook receiver must do — read the body, compute one SHA-256 over
// body+key and compare it with X-Webhook-Hash, read the event name — and
// answers 200 without publishing anything. The bridge's requests per second
// as a percentage of this server's, on the same machine with the same load,
// is the cost of verification (both SDK rules), routing and the broker.
//
//	LISTEN_ADDR=127.0.0.1:8090 SENFENICO_WEBHOOK_KEYS=secret senfenico-ceiling
//
// Flags --listen and --key override the environment. Any POST path is
// accepted; wrong signatures get 401, bodies without a string event 400.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// maxBody matches the bridge's default MAX_BODY_BYTES.
const maxBody = 1 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// run serves until ctx ends and returns the exit status. ready, when not
// nil, receives the bound address once the server accepts connections.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready func(net.Addr)) int {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	fs := flag.NewFlagSet("senfenico-ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "listen address (default: LISTEN_ADDR, else 127.0.0.1:8090)")
	key := fs.String("key", "", "webhook secret (default: first of SENFENICO_WEBHOOK_KEYS)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *listen == "" {
		*listen = getenv("LISTEN_ADDR")
	}
	if *listen == "" {
		*listen = "127.0.0.1:8090"
	}
	if *key == "" {
		first, _, _ := strings.Cut(getenv("SENFENICO_WEBHOOK_KEYS"), ",")
		*key = strings.TrimSpace(first)
	}
	if *key == "" {
		fmt.Fprintln(stderr, "senfenico-ceiling: no key: set --key or SENFENICO_WEBHOOK_KEYS")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("listen", slog.Any("err", err))
		return 1
	}
	srv := &http.Server{
		Handler:           newHandler(*key),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("addr", ln.Addr().String()))
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		logger.Error("serve", slog.Any("err", err))
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error("shutdown", slog.Any("err", err))
		return 1
	}
	return 0
}

// newHandler returns the ceiling's webhook handler for key.
func newHandler(key string) http.Handler {
	k := []byte(key)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if !signed(body, k, r.Header.Get("X-Webhook-Hash")) {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		var env struct {
			Event string `json:"event"`
		}
		if json.Unmarshal(body, &env) != nil || env.Event == "" {
			http.Error(w, "malformed body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// signed reports whether sig is the hex SHA-256 of body followed by key (the
// PHP SDK's rule: one hash, the cheapest check a receiver can make).
func signed(body, key []byte, sig string) bool {
	var want, got [sha256.Size]byte
	if len(sig) != hex.EncodedLen(sha256.Size) {
		return false
	}
	if _, err := hex.Decode(want[:], []byte(sig)); err != nil {
		return false
	}
	h := sha256.New()
	h.Write(body)
	h.Write(key)
	return subtle.ConstantTimeCompare(h.Sum(got[:0]), want[:]) == 1
}
