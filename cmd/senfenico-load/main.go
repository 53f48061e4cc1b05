// Command senfenico-load sends distinct, correctly signed Senfenico
// notifications to a webhook endpoint, open loop (--rate) or closed loop
// (--concurrency), optionally resending like Senfenico (--resend), and
// prints throughput, latency percentiles, status counts and, with
// --count-nats or --count-kafka, how many of the notifications answered 200
// a real subscriber received.
//
//	senfenico-load --url http://127.0.0.1:8080/webhooks/senfenico -n 20000 --concurrency 64
//	senfenico-load --rate 2000 --duration 10s --count-nats nats://127.0.0.1:4222 --stream SENFENICO
//	senfenico-load --rate 500 -n 5000 --resend --resend-for 2m --count-kafka 127.0.0.1:19092 --topic charge.success
//
// The key comes from --key or the first of SENFENICO_WEBHOOK_KEYS. Exit
// status: 0 done, 1 error, 2 bad usage, 3 some notification answered 200
// was not delivered to the subscriber.
//
// The work is done by package loadgen, which tests import directly.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-load/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses of run.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	exitLost  = 3
)

// run parses args, runs the load and prints the summary; it returns the exit
// status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, out, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "senfenico-load:", err)
		return exitUsage
	}
	if out.writeRequests != "" {
		if err := writeRequests(out.writeRequests, cfg); err != nil {
			fmt.Fprintln(stderr, "senfenico-load:", err)
			return exitError
		}
		return exitOK
	}
	level := slog.LevelWarn
	if out.verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sum, err := loadgen.Run(ctx, cfg)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "senfenico-load:", err)
		if errors.Is(err, loadgen.ErrConfig) {
			return exitUsage
		}
		if sum.Requests == 0 {
			return exitError
		}
	}
	if out.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			fmt.Fprintln(stderr, "senfenico-load:", err)
			return exitError
		}
	} else {
		printText(stdout, sum)
	}
	if err != nil {
		return exitError
	}
	if sum.Deliveries != nil && sum.Deliveries.Lost > 0 {
		return exitLost
	}
	return exitOK
}

// writeRequests writes cfg.Count notifications of cfg.Event, one
// "<signature> <body>" line each (the bodies hold no newline).
func writeRequests(path string, cfg loadgen.Config) error {
	event := cfg.Event
	if event == "" {
		event = loadgen.DefaultEvent
	}
	notifications, err := loadgen.Build(event, cfg.Key, cfg.Count)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, n := range notifications {
		w.WriteString(n.Signature)
		w.WriteByte(' ')
		w.Write(n.Body)
		w.WriteByte('\n')
	}
	return errors.Join(w.Flush(), f.Close())
}

// output holds the flags that shape the output rather than the run.
type output struct {
	json    bool
	verbose bool
	// writeRequests, when set, names a file to write the notifications to
	// (one "<signature> <body>" line each) instead of sending them: the
	// input of scripts/wrk/signed.lua, for a load generator that cannot
	// sign.
	writeRequests string
}

// parseFlags turns the command line into a loadgen.Config.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (loadgen.Config, output, error) {
	var (
		cfg        loadgen.Config
		out        output
		natsURL    string
		stream     string
		subject    string
		kafkaAddrs string
		topic      string
	)
	fs := flag.NewFlagSet("senfenico-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/webhooks/senfenico", "webhook endpoint")
	fs.StringVar(&cfg.Key, "key", "", "webhook secret (default: first of SENFENICO_WEBHOOK_KEYS)")
	fs.StringVar(&cfg.Event, "event", loadgen.DefaultEvent, "event name of every notification")
	fs.IntVar(&cfg.Count, "n", 0, "number of distinct notifications (default with --rate: rate × duration)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop starting notifications after this long (0: send all -n)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: notifications per second (0: closed loop)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, fmt.Sprintf("closed loop: workers (default %d); open loop: cap on requests in flight (default %d)",
		loadgen.DefaultConcurrency, loadgen.DefaultMaxInFlight))
	fs.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "bound on one HTTP attempt")
	fs.BoolVar(&cfg.Resend, "resend", false, "resend every notification not answered 200, like Senfenico")
	fs.DurationVar(&cfg.ResendFor, "resend-for", loadgen.DefaultResendFor, "how long after it was due a notification is resent")
	fs.DurationVar(&cfg.ResendBackoff, "resend-backoff", loadgen.DefaultResendBackoff, "pause before the first resend (doubles)")
	fs.DurationVar(&cfg.ResendBackoffMax, "resend-backoff-max", loadgen.DefaultResendBackoffMax, "longest pause between resends")
	fs.StringVar(&natsURL, "count-nats", "", "count deliveries on this NATS server")
	fs.StringVar(&stream, "stream", "", "with --count-nats: read this JetStream stream with an ordered consumer (empty: core subscription)")
	fs.StringVar(&subject, "subject", "", "with --count-nats: subject or filter (default: the event for core NATS, the whole stream for JetStream)")
	fs.StringVar(&kafkaAddrs, "count-kafka", "", "count deliveries on these Kafka brokers (comma-separated)")
	fs.StringVar(&topic, "topic", "", "with --count-kafka: topic (default: the event)")
	fs.DurationVar(&cfg.SettleTimeout, "settle", loadgen.DefaultSettleTimeout, "after the last answer, wait this long without a new delivery")
	fs.BoolVar(&out.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&out.verbose, "v", false, "log progress to stderr")
	fs.StringVar(&out.writeRequests, "write-requests", "", "write -n signed notifications to this file, one \"<signature> <body>\" line each, and send nothing")
	if err := fs.Parse(args); err != nil {
		return cfg, out, err
	}
	if fs.NArg() > 0 {
		return cfg, out, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.Key == "" {
		first, _, _ := strings.Cut(getenv("SENFENICO_WEBHOOK_KEYS"), ",")
		cfg.Key = strings.TrimSpace(first)
	}
	if cfg.Key == "" {
		return cfg, out, errors.New("no key: set --key or SENFENICO_WEBHOOK_KEYS")
	}
	if cfg.Count == 0 && !(cfg.Rate > 0 && cfg.Duration > 0) {
		return cfg, out, errors.New("set -n, or --rate with --duration")
	}
	event := cfg.Event
	if event == "" {
		event = loadgen.DefaultEvent
	}
	switch {
	case natsURL != "" && kafkaAddrs != "":
		return cfg, out, errors.New("--count-nats and --count-kafka exclude each other")
	case natsURL != "":
		if stream == "" && subject == "" {
			subject = event
		}
		cfg.Subscriber = loadgen.NewNATSSubscriber(loadgen.NATSConfig{URL: natsURL, Stream: stream, Subject: subject})
	case kafkaAddrs != "":
		if topic == "" {
			topic = event
		}
		cfg.Subscriber = loadgen.NewKafkaSubscriber(loadgen.KafkaConfig{Brokers: strings.Split(kafkaAddrs, ","), Topic: topic})
	}
	return cfg, out, nil
}

// printText writes the summary for a human.
func printText(w io.Writer, s loadgen.Summary) {
	mode := fmt.Sprintf("closed loop, %d workers", s.Concurrency)
	if s.Mode == "rate" {
		mode = fmt.Sprintf("open loop, %g/s, at most %d in flight", s.Rate, s.Concurrency)
	}
	fmt.Fprintf(w, "%s: %s\n", s.Event, mode)
	fmt.Fprintf(w, "notifications   %d (requests %d) in %.2f s: %.1f requests/s\n",
		s.Notifications, s.Requests, s.ElapsedSeconds, s.RequestsPerSecond)
	l := s.Latency
	fmt.Fprintf(w, "latency ms      p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	var codes []string
	for _, k := range slices.Sorted(maps.Keys(s.Status)) {
		codes = append(codes, fmt.Sprintf("%s: %d", k, s.Status[k]))
	}
	fmt.Fprintf(w, "status          %s\n", strings.Join(codes, ", "))
	if s.LastError != "" {
		fmt.Fprintf(w, "last error      %s\n", s.LastError)
	}
	fmt.Fprintf(w, "answered_200    %d  not_answered_200 %d  resends %d (%d notifications resent)\n",
		s.Answered200, s.NotAnswered200, s.Resends, s.EventsResent)
	if s.Resends > 0 {
		t := s.TimeTo200
		fmt.Fprintf(w, "time to 200 ms  p50 %.3f  p99 %.3f  max %.3f\n", t.P50, t.P99, t.Max)
	}
	if d := s.Deliveries; d != nil {
		fmt.Fprintf(w, "deliveries (%s): delivered_unique %d  duplicates_seen %d  lost %d  delivered_without_200 %d",
			d.Source, d.Unique, d.Duplicates, d.Lost, d.WithoutOK)
		if d.ReferenceConflicts > 0 {
			fmt.Fprintf(w, "  reference_id_conflicts %d", d.ReferenceConflicts)
		}
		fmt.Fprintf(w, "  foreign %d\n", d.Foreign)
	}
}
