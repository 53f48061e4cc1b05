package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/cmd/senfenico-bridge/internal/replay"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/kafkasink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink/natsembed"
)

func init() {
	subcommands["replay"] = subcommand{summary: "publish stored events again, or redrive dead letters", run: runReplay}
}

// exitIncomplete: the run went through, but some selected messages were
// not published (not redriven, or refused by the broker).
const exitIncomplete = 3

const replayExits = `Exit status:
  0  every selected message was published (or would be, with --dry-run),
     or was a duplicate
  1  failure: a broker or the network failed; the lines above say how far
     the run got (run it again with the same --run-id to resume)
  2  usage or configuration error (one line on stderr says which)
  3  the run went through, but some selected messages were not published:
     dead letters that still do not route, or messages the broker refused`

// replayConnectTimeout bounds the connection to the broker: replay is run
// by hand, and says what failed rather than waiting as the bridge does.
const replayConnectTimeout = 30 * time.Second

// replayCloseTimeout bounds the close of the sinks after a run.
const replayCloseTimeout = 10 * time.Second

// replayPlaceholderKey stands in for SENFENICO_WEBHOOK_KEYS, which replay
// does not need, when the variable is not set: the configuration is read
// and checked as the bridge's is.
const replayPlaceholderKey = "replay-needs-no-webhook-key"

func runReplay(ctx context.Context, args []string, env map[string]string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSetExits("replay", "[flags]",
		`Replay publishes again events the broker stored, to their own subjects
(topics on Kafka), with their ce-id, ce-type, ce-time and body (and on Kafka
their key), so that consumers that deduplicate on ce-id take each one once.
With --dead-letters it redrives dead letters instead: the body each one kept,
the request as Senfenico posted it, is routed again by the bridge's own code
with today's TOPIC_PREFIX, EVENT_FAMILIES, DEAD_LETTER_SUBJECT and
SCHEMA_VALIDATION, and the event goes to the subject it gets. A dead letter
that would be one again is reported, not published, and so is every
malformed-data one: its data is not JSON, whatever the configuration.

A message is chosen when it matches every selecting flag given (and, for a
flag given several values, any of them). Choose with at least one of them,
--dead-letters, or --all. Only what the broker held when the run began is
read; copies published by a replay are never chosen.

Each chosen message gets one line on stdout,
  <ce-id> <from> -> <to> <result> [reason]
where result is published, would-publish (--dry-run), duplicate, refused or
not-redriven, and reason the dead letter's reason (and why it was not
published); a summary line ends the output. A run that lasts prints its
progress on stderr every second.

Each copy carries ce-replayrun (Kafka: ce_replayrun), the run's id, and
ce-replayfrom (ce_replayfrom), the subject it was read from. On JetStream
its Nats-Msg-Id is <ce-id>:<run id>, so the stream, which holds the ce-id
already, stores it, and answers the same run publishing it again as a
duplicate: a run stopped halfway is resumed with its --run-id (printed at
the start) without a second copy, within the stream's duplicate window
(DEDUP_WINDOW). A run with a new id publishes again.

Replay connects as the bridge does, from the same variables (NATS_URL,
NATS_CREDS, NATS_USER and NATS_PASSWORD, NATS_TLS_*, NATS_STREAM;
KAFKA_BROKERS, KAFKA_SASL_*, KAFKA_TLS*): run it with the bridge's
environment. Without NATS_URL it logs in to the running bridge's embedded
server as the operator, whose credentials the bridge keeps in
DATA_DIR/operator.url. It leaves the stream's limits as they are (a redrive
to a family the stream does not capture yet adds it, as the bridge would).
It needs no SENFENICO_WEBHOOK_KEYS.`, replayExits)
	var ids, references, events, reasons listFlag
	fs.Var(&ids, "ce-id", "select this ce-id (repeatable, or comma-separated)")
	fs.Var(&references, "reference", "select events whose data.reference is this (repeatable, or comma-separated)")
	fs.Var(&events, "event", "select events of this family (charge: charge.success, charge.failed, ...),\nof this name (charge.success), or matching this pattern (charge.*,\n*.failed, charge.>); repeatable, or comma-separated")
	fs.Var(&reasons, "reason", "select dead letters with this reason: "+strings.Join(replay.Reasons[:2], ", ")+",\n"+strings.Join(replay.Reasons[2:4], ", ")+", "+strings.Join(replay.Reasons[4:], ", ")+";\nrepeatable, or comma-separated; implies --dead-letters")
	since := fs.String("since", "", "select what the bridge received at or after this time (ce-time): RFC 3339\n(2026-01-02T15:04:05Z) or a duration before now (2h, 90m)")
	until := fs.String("until", "", "select what the bridge received before this time (RFC 3339, or a duration\nbefore now)")
	deadLetters := fs.Bool("dead-letters", false, "redrive dead letters (read from DEAD_LETTER_SUBJECT) instead of\nreplaying events")
	all := fs.Bool("all", false, "choose every event (every dead letter with --dead-letters) that the\nother flags allow")
	dryRun := fs.Bool("dry-run", false, "list what the run would publish, and publish nothing")
	runID := fs.String("run-id", "", "the run's id, in every copy's headers: 1 to 64 of A-Z a-z 0-9 _ -\n(default: a new one); an earlier run's id resumes that run")
	sinkFlag := fs.String("sink", "", "the broker to read and publish to: nats or kafka (default: the first of\nSINKS)")
	pos, code, ok := parseFlags(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "replay", "takes no arguments, got %q (select with --ce-id, --event, ...)", pos)
	}
	now := time.Now()
	sel := replay.Selection{IDs: ids, References: references, Events: events}
	var err error
	if sel.Since, err = parseReplayTime(*since, now); err != nil {
		return usageError(stderr, "replay", "--since: %v", err)
	}
	if sel.Until, err = parseReplayTime(*until, now); err != nil {
		return usageError(stderr, "replay", "--until: %v", err)
	}
	for _, r := range reasons {
		sel.Reasons = append(sel.Reasons, canonicalReason(r))
	}
	if len(sel.Reasons) > 0 {
		*deadLetters = true
	}
	if err := sel.Validate(); err != nil {
		return usageError(stderr, "replay", "%s", strings.TrimPrefix(err.Error(), replay.ErrConfig.Error()+": "))
	}
	selects := len(ids)+len(references)+len(events)+len(reasons) > 0 || *since != "" || *until != ""
	if !selects && !*all && !*deadLetters {
		return usageError(stderr, "replay", "choose what to replay: --ce-id, --reference, --event, --since, --until, --dead-letters, or --all for every event")
	}
	if *runID == "" {
		*runID = newRunID()
	} else if !replay.ValidRunID(*runID) {
		return usageError(stderr, "replay", "--run-id %q: want 1 to %d of A-Z a-z 0-9 _ -", *runID, replay.MaxRunIDLen)
	}

	if env["SENFENICO_WEBHOOK_KEYS"] == "" {
		env = withVariable(env, "SENFENICO_WEBHOOK_KEYS", replayPlaceholderKey)
	}
	cfg, err := loadConfig(env)
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge replay: %v\n", scrub(err.Error(), cfg.secrets()))
		return exitUsage
	}
	sinkName := strings.ToLower(strings.TrimSpace(*sinkFlag))
	if sinkName == "" {
		sinkName = cfg.Sinks[0]
	}
	if sinkName != "nats" && sinkName != "kafka" {
		return usageError(stderr, "replay", "--sink %q: want nats or kafka", *sinkFlag)
	}
	secrets := cfg.secrets()
	logger := slog.New(slog.NewTextHandler(newScrubWriter(stderr, secrets), &slog.HandlerOptions{Level: slog.LevelWarn}))

	rcfg := replay.Config{
		Selection:         sel,
		DeadLetters:       *deadLetters,
		TopicPrefix:       cfg.TopicPrefix,
		DeadLetterSubject: cfg.DeadLetterSubject,
		RunID:             *runID,
		DryRun:            *dryRun,
		Out:               stdout,
		Progress:          stderr,
		PublishTimeout:    cfg.PublishTimeout,
	}
	if *deadLetters {
		router, err := replayRouter(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "senfenico-bridge replay: %v\n", err)
			return exitUsage
		}
		rcfg.Router = router
	}
	var conn *replayConn
	switch sinkName {
	case "nats":
		conn, err = connectReplayNATS(ctx, cfg, logger, *dryRun)
	case "kafka":
		conn, err = connectReplayKafka(ctx, cfg, logger)
	}
	if err != nil {
		fmt.Fprintf(stderr, "senfenico-bridge replay: %v\n", scrub(err.Error(), append(secrets, conn.secrets()...)))
		var ce *configError
		if errors.As(err, &ce) {
			return exitUsage
		}
		return exitFailed
	}
	defer conn.close()
	secrets = append(secrets, conn.secrets()...)
	rcfg.Source, rcfg.Publisher = conn.source, conn.publisher

	what := "replaying events"
	if *deadLetters {
		what = "redriving dead letters from " + cfg.DeadLetterSubject
	}
	if *dryRun {
		what += "; dry run, nothing is published"
	} else {
		what += "; --run-id " + *runID + " resumes it"
	}
	fmt.Fprintf(stderr, "senfenico-bridge replay: run %s on %s, %s\n", *runID, conn.where, what)
	sum, err := replay.Run(ctx, rcfg)
	switch {
	case errors.Is(err, replay.ErrConfig):
		fmt.Fprintf(stderr, "senfenico-bridge replay: %v\n", err)
		return exitUsage
	case err != nil:
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(stderr, "senfenico-bridge replay: %v; the summary above says how far the run got", scrub(err.Error(), secrets))
		if !*dryRun {
			fmt.Fprintf(stderr, ", and --run-id %s resumes it", *runID)
		}
		fmt.Fprintln(stderr)
		return exitFailed
	case sum.Incomplete():
		return exitIncomplete
	}
	return exitOK
}

// listFlag is a flag that may be repeated and takes comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// parseReplayTime reads --since and --until: RFC 3339, or a positive
// duration before now. Empty is the zero time (unbounded).
func parseReplayTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a duration before now (2h)", s)
	}
	return now.Add(-d), nil
}

// canonicalReason maps the spellings of a dead-letter reason that the
// metrics use (unroutable, family_not_listed) to the header's.
func canonicalReason(r string) string {
	r = strings.ReplaceAll(strings.ToLower(r), "_", "-")
	if r == "unroutable" {
		return sinks.ReasonUnroutable
	}
	return r
}

// newRunID draws a run id: 10 hex digits.
func newRunID() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// withVariable returns a copy of env with one more variable.
func withVariable(env map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[key] = value
	return out
}

// replayRouter routes dead letters as the bridge configured by cfg does.
func replayRouter(cfg config) (*replay.BridgeRouter, error) {
	bcfg := cfg.bridgeConfig(nil)
	if bcfg.SchemaMode == bridge.SchemaEnforce {
		v, err := schemas.New()
		if err != nil {
			return nil, err
		}
		bcfg.Validator = v
	}
	r, err := replay.NewBridgeRouter(bcfg)
	if err != nil {
		return nil, packageConfigError(err)
	}
	return r, nil
}

// replayConn is what a run reads and publishes with, and how to release it.
type replayConn struct {
	source    replay.Source
	publisher replay.Publisher
	// where names the broker for the start line, without credentials.
	where    string
	password string
	closers  []func(context.Context) error
}

func (c *replayConn) secrets() []string {
	if c == nil || len(c.password) < 4 {
		return nil
	}
	return []string{c.password}
}

func (c *replayConn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), replayCloseTimeout)
	defer cancel()
	for _, f := range slices.Backward(c.closers) {
		_ = f(ctx)
	}
}

// connectReplayNATS connects to the bridge's NATS server, reads the stream
// through one connection and, unless dryRun, publishes through a NATS sink
// of its own, configured so that connecting changes none of the stream's
// limits.
func connectReplayNATS(ctx context.Context, cfg config, logger *slog.Logger, dryRun bool) (*replayConn, error) {
	if cfg.NATSMode == natssink.ModeCore {
		return nil, &configError{"NATS_MODE", "core: nothing is stored in core mode, so there is nothing to replay"}
	}
	ncfg := cfg.natsConfig(logger)
	if err := ncfg.Validate(); err != nil && cfg.NATSURL != "" {
		return nil, packageConfigError(err)
	}
	conn := &replayConn{}
	variable, shown := "NATS_URL", redactURLs(cfg.NATSURL)
	if cfg.NATSURL == "" {
		raw, user, password, err := natsembed.ReadOperatorFile(cfg.DataDir)
		if errors.Is(err, natsembed.ErrNoReaderFile) {
			return nil, &configError{"DATA_DIR", fmt.Sprintf("%s holds no operator credentials (%s): run replay beside the running bridge, with its DATA_DIR, or set NATS_URL", cfg.DataDir, natsembed.OperatorFile(cfg.DataDir))}
		}
		if err != nil {
			return nil, &environmentError{"DATA_DIR", cfg.DataDir, err}
		}
		conn.password = password
		u, err := url.Parse(raw)
		if err != nil {
			return nil, &environmentError{"DATA_DIR", cfg.DataDir, err}
		}
		u.User = nil
		ncfg = toEmbedded(ncfg, u.String(), user, password)
		variable, shown = "DATA_DIR", cfg.DataDir+" (embedded server "+u.String()+")"
	}
	auth, err := natssink.AuthOptions(ncfg)
	if err != nil {
		return nil, packageConfigError(err)
	}
	opts := append([]nats.Option{nats.Name("senfenico-bridge replay"), nats.Timeout(natssink.DefaultConnectTimeout)}, auth...)
	nc, err := nats.Connect(ncfg.URL, opts...)
	if err != nil {
		return nil, &environmentError{variable, shown, err}
	}
	conn.closers = append(conn.closers, func(context.Context) error { nc.Close(); return nil })
	conn.where = "NATS " + nc.ConnectedUrlRedacted() + " stream " + cfg.NATSStream
	js, err := jetstream.New(nc)
	if err != nil {
		conn.close()
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, replayConnectTimeout)
	defer cancel()
	stream, err := js.Stream(sctx, cfg.NATSStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		conn.close()
		return nil, &environmentError{"NATS_STREAM", cfg.NATSStream, errors.New("no such stream on the server")}
	}
	if err != nil {
		conn.close()
		return nil, &environmentError{variable, shown, err}
	}
	conn.source = replay.NewJetStream(js, cfg.NATSStream)
	if dryRun {
		return conn, nil
	}
	// The sink brings a stream it manages to the limits of its Config at
	// start: these are the stream's own, so it keeps them whatever this
	// environment says.
	sc := stream.CachedInfo().Config
	if sc.Duplicates > 0 {
		ncfg.DedupWindow = sc.Duplicates
	}
	ncfg.MaxAge = noLimitIfZero(sc.MaxAge)
	ncfg.MaxBytes = max(sc.MaxBytes, -1)
	if ncfg.MaxBytes == 0 {
		ncfg.MaxBytes = -1
	}
	ncfg.Name = "senfenico-bridge replay"
	sink, err := natssink.New(sctx, ncfg)
	if err != nil {
		conn.close()
		return nil, &environmentError{variable, shown, err}
	}
	conn.publisher = sink
	conn.closers = append(conn.closers, sink.Close)
	return conn, nil
}

// connectReplayKafka connects a Kafka sink, which both reads (its client)
// and publishes. It writes nothing until the run publishes.
func connectReplayKafka(ctx context.Context, cfg config, logger *slog.Logger) (*replayConn, error) {
	if len(cfg.KafkaBrokers) == 0 {
		return nil, &configError{"KAFKA_BROKERS", "required to replay on Kafka"}
	}
	kcfg := cfg.kafkaConfig(logger)
	kcfg.ClientID = "senfenico-bridge-replay"
	if err := kcfg.Validate(); err != nil {
		return nil, packageConfigError(err)
	}
	brokers := strings.Join(redactBrokers(cfg.KafkaBrokers), ",")
	kctx, cancel := context.WithTimeout(ctx, replayConnectTimeout)
	defer cancel()
	sink, err := kafkasink.New(kctx, kcfg)
	if err != nil {
		return nil, &environmentError{"KAFKA_BROKERS", brokers, err}
	}
	return &replayConn{
		source:    replay.NewKafka(sink.Client()),
		publisher: sink,
		where:     "Kafka " + brokers,
		closers:   []func(context.Context) error{sink.Close},
	}, nil
}
