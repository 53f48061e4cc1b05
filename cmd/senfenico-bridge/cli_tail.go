package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

func init() {
	subcommands["tail"] = subcommand{summary: "print the events published on NATS as they arrive", run: runTail}
}

func runTail(ctx context.Context, args []string, env map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tail", "[subject] [flags]",
		`Tail subscribes to NATS and prints every event as it arrives: a line with
the bridge's receive time (ce-time), the subject, the ce-id and, for dead
letters, the reason; then the body as indented JSON. The subject may hold
wildcards (charge.*, checkout.>); by default every subject is shown except
the server's own ($JS, $SYS...) and request replies (_INBOX). Tail uses a
core subscription: it sees what is published while it runs, not the stream's
history, and not the copies JetStream consumers receive. It authenticates
like the bridge, from NATS_CREDS, NATS_NKEY_SEED, NATS_TOKEN or NATS_USER and
NATS_PASSWORD, and NATS_TLS_*;
on the bridge's embedded server it logs in as a reader (--reader), with
the password in DATA_DIR/readers/<reader>.url, or NATS_EMBEDDED_READER_PASSWORD
for reader "reader" when that is set. It runs until interrupted or until --count events were
printed.`)
	url := fs.String("url", defaultNATSURL(env), "NATS server URL; the default follows NATS_URL, else NATS_EMBEDDED_LISTEN")
	reader := fs.String("reader", natsembed.DefaultReader, "on the bridge's embedded server, log in as this reader, with the credentials the bridge keeps in DATA_DIR/readers")
	count := fs.Int("count", 0, "exit after printing this many events (default: run until interrupted)")
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 1 || *count < 0 {
		return usageError(stderr, "tail", "want at most one subject and a --count of 0 or more, got %q and %d", pos, *count)
	}
	subject, everything := ">", true
	if len(pos) == 1 {
		subject, everything = pos[0], false
	}

	urlGiven := false
	fs.Visit(func(f *flag.Flag) { urlGiven = urlGiven || f.Name == "url" })
	opts, err := natsOptions(env, *reader, urlGiven, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge tail: %v\n", err)
		return exitUsage
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge tail: connect to %s: %v\n", redactURLs(*url), err)
		return exitFailed
	}
	defer nc.Close()
	// A buffer lets a burst wait while the terminal catches up; beyond it
	// nats.go drops messages and the error handler says so.
	msgs := make(chan *nats.Msg, 4096)
	if _, err := nc.ChanSubscribe(subject, msgs); err != nil {
		if errors.Is(err, nats.ErrBadSubject) {
			return usageError(stderr, "tail", "%q is not a NATS subject", subject)
		}
		fmt.Fprintf(stderr, "senfenico-bridge tail: subscribe %s: %v\n", subject, err)
		return exitFailed
	}
	// The server has the subscription once Flush returns: from then on
	// nothing published is missed, which the line below promises.
	flushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(flushCtx); err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge tail: subscribe %s: %v\n", subject, err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "senfenico-bridge tail: listening on %s for %s\n", nc.ConnectedUrlRedacted(), subject)

	for printed := 0; *count == 0 || printed < *count; {
		select {
		case <-ctx.Done():
			return exitOK
		case m := <-msgs:
			if !published(m, everything) {
				continue
			}
			printEvent(stdout, m)
			printed++
		}
	}
	return exitOK
}

// published reports whether m is a publish rather than a copy the server
// made of one. A JetStream consumer gets each stored event delivered again,
// with a "$JS.ACK." reply, on a subject of its choosing (often an inbox, but
// a push consumer may deliver on any subject, "checkout.>" included): those
// are skipped whatever the subject, or tail would print an event once per
// consumer reading the stream. With no subject given, the server's own
// traffic ($JS, $SYS) and request replies (inboxes) are skipped too.
func published(m *nats.Msg, everything bool) bool {
	if strings.HasPrefix(m.Reply, "$JS.ACK.") {
		return false
	}
	if everything && (strings.HasPrefix(m.Subject, "$") || strings.HasPrefix(m.Subject, "_INBOX.") ||
		strings.HasPrefix(m.Subject, natsembed.BridgeInboxPrefix+".")) {
		return false
	}
	return true
}

// printEvent writes one event: a header line, then the indented body.
func printEvent(w io.Writer, m *nats.Msg) {
	at := time.Now()
	if t, err := time.Parse(time.RFC3339Nano, m.Header.Get(natssink.HeaderTime)); err == nil {
		at = t
	}
	id := m.Header.Get(natssink.HeaderID)
	if id == "" {
		id = "-"
	}
	line := fmt.Sprintf("%s %s ce-id=%s", at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), m.Subject, id)
	if reason := m.Header.Get(natssink.HeaderDeadLetterReason); reason != "" {
		// The NATS binding percent-encodes header values (the detail holds
		// spaces and quotes); a value that does not decode is shown as sent.
		if detail := m.Header.Get(natssink.HeaderDeadLetterDetail); detail != "" {
			if decoded, err := natssink.DecodeHeaderValue(detail); err == nil {
				detail = decoded
			}
			reason += ": " + detail
		}
		line += " [dead letter: " + reason + "]"
	}
	var body bytes.Buffer
	if err := json.Indent(&body, m.Data, "  ", "  "); err != nil {
		// A dead letter's body is whatever was posted; quoting it keeps
		// control bytes away from the terminal.
		body.Reset()
		body.WriteString(strconv.Quote(string(m.Data)))
	}
	fmt.Fprintf(w, "%s\n  %s\n", printable(line), body.Bytes())
}

// printable quotes s when it holds characters a terminal would interpret:
// headers come from whoever published, not only from the bridge.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// defaultNATSURL is the server a bridge started with env publishes to.
func defaultNATSURL(env map[string]string) string {
	if u := env["NATS_URL"]; u != "" {
		return u
	}
	if l := env["NATS_EMBEDDED_LISTEN"]; l != "" {
		return "nats://" + localAddr(l)
	}
	return "nats://127.0.0.1:4222"
}

// natsOptions authenticates the way the bridge's NATS sink does, from the
// same variables, so that tail works against the bridge's own broker.
// On the embedded server (no NATS_URL) it logs in as reader; a --url given
// (urlGiven) may be another server, where a missing reader file is no
// error.
func natsOptions(env map[string]string, reader string, urlGiven bool, stderr io.Writer) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name("senfenico-bridge tail"),
		// A tail outlives broker restarts rather than exiting mid-watch.
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				fmt.Fprintf(stderr, "senfenico-bridge tail: disconnected: %v\n", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			fmt.Fprintf(stderr, "senfenico-bridge tail: reconnected to %s\n", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			fmt.Fprintf(stderr, "senfenico-bridge tail: %v\n", err)
		}),
	}
	switch {
	case env["NATS_CREDS"] != "":
		opts = append(opts, nats.UserCredentials(env["NATS_CREDS"]))
	case env["NATS_NKEY_SEED"] != "":
		o, err := nats.NkeyOptionFromSeed(env["NATS_NKEY_SEED"])
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_SEED: %w", err)
		}
		opts = append(opts, o)
	case env["NATS_TOKEN"] != "":
		opts = append(opts, nats.Token(env["NATS_TOKEN"]))
	case env["NATS_USER"] != "":
		opts = append(opts, nats.UserInfo(env["NATS_USER"], env["NATS_PASSWORD"]))
	case env["NATS_URL"] == "" && reader == natsembed.DefaultReader && env["NATS_EMBEDDED_READER_PASSWORD"] != "":
		opts = append(opts, nats.UserInfo(natsembed.DefaultReader, env["NATS_EMBEDDED_READER_PASSWORD"]))
	case env["NATS_URL"] == "":
		// The bridge's embedded server: a reader, with the password the
		// bridge drew for it.
		dataDir := env["DATA_DIR"]
		if dataDir == "" {
			dataDir = defaultDataDir
		}
		_, user, password, err := natsembed.ReadReaderFile(dataDir, reader)
		if errors.Is(err, natsembed.ErrNoReaderFile) && urlGiven {
			break
		}
		if errors.Is(err, natsembed.ErrNoReaderFile) {
			return nil, fmt.Errorf("no credentials for reader %q in DATA_DIR %s: start the bridge first (with the reader in NATS_EMBEDDED_READERS), or set NATS_USER and NATS_PASSWORD", reader, dataDir)
		}
		if err != nil {
			return nil, fmt.Errorf("reader %q: %w", reader, err)
		}
		opts = append(opts, nats.UserInfo(user, password))
	}
	if ca := env["NATS_TLS_CA"]; ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cert := env["NATS_TLS_CERT"]; cert != "" {
		opts = append(opts, nats.ClientCert(cert, env["NATS_TLS_KEY"]))
	}
	return opts, nil
}
