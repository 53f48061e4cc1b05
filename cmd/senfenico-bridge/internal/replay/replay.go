// Package replay publishes again what a broker stored: events to their own
// subjects (a replay), and dead letters to the subject they should have had
// once the cause is fixed (a redrive), chosen by ce-id, reference, event,
// dead-letter reason and time.
//
// A run reads the broker (a Source: JetStream or Kafka), keeps what the
// Selection matches, routes each dead letter again with the bridge's own
// code (BridgeRouter) and publishes through a Publisher, the bridge's own
// sinks, which keep the ce-id and mark the copy with the run's id
// (natssink.PublishReplay, kafkasink.PublishReplay). It reads only what was
// stored when it began, so its own copies are never read back; copies an
// earlier run published are never selected.
//
// The files: replay.go (Run), select.go (Selection), route.go (the
// bridge's routing), jetstream.go and kafka.go (the Sources).
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/senfenico-bridge/senfenico-bridge/bridge"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// ErrConfig is wrapped by the errors of Config.Validate and Selection.Validate.
var ErrConfig = errors.New("replay: invalid config")

// Stored is one message a Source read.
type Stored struct {
	// Msg is the message as the bridge published it (Subject: where it was
	// read). Key is empty on NATS, which does not carry it.
	Msg sinks.Message
	// Copy is true for a copy that a replay published (it carries the
	// replay-run header): never selected, or a run would replay the copies
	// of earlier runs beside their originals.
	Copy bool
	// Err says why the message is not one the bridge published (no ce-id,
	// no ce-time): it is counted as unreadable and skipped.
	Err error
}

// Scope is what a run needs a Source to read.
type Scope struct {
	// Filters are subject filters (NATS wildcards; topic names on Kafka)
	// covering every message the run may select; nil covers every subject.
	// A Source may read more: the run checks each message again.
	Filters []string
	// Since: no message stored before it is selected (zero: the start).
	Since time.Time
}

// Source reads a broker's stored messages.
type Source interface {
	// Read calls yield, one message after the other, for the messages that
	// were stored when Read began on a subject within scope (in the order
	// stored; on Kafka, partition after partition). It blocks until it read
	// them all, yield returned an error (which Read returns), or ctx ended.
	// Broker failures wrap sinks.ErrUnavailable.
	Read(ctx context.Context, scope Scope, yield func(*Stored) error) error
}

// Publisher publishes a copy of a stored message: natssink.Sink and
// kafkasink.Sink.
type Publisher interface {
	// PublishReplay publishes msg under msg.Subject with msg.ID as its
	// ce-id, marked as published by replay run run, read from from; it
	// blocks until the broker confirmed it, as sinks.Sink.Publish does.
	PublishReplay(ctx context.Context, msg *sinks.Message, run, from string) (sinks.Receipt, error)
}

// Defaults of Config's zero fields.
const (
	DefaultProgressInterval = time.Second
	DefaultPublishTimeout   = 10 * time.Second
	// MaxRunIDLen bounds Config.RunID, which goes into every copy's headers.
	MaxRunIDLen = 64
	// maxSeen bounds the ce-ids a run remembers to publish each one once:
	// beyond it (about 100 MiB of them), later duplicates are published
	// again, and JetStream still drops those of one run.
	maxSeen = 1 << 20
)

// Config configures a Run. Source, RunID and Out are required; Publisher
// unless DryRun; Router with DeadLetters.
type Config struct {
	// Source reads the broker.
	Source Source
	// Publisher publishes the copies; unused in a dry run.
	Publisher Publisher
	// Router routes dead letters again (BridgeRouter); used with
	// DeadLetters only.
	Router Router
	// Selection chooses the messages.
	Selection Selection
	// DeadLetters redrives dead letters; otherwise routed events are
	// replayed to their own subjects and dead letters left alone.
	DeadLetters bool
	// TopicPrefix is the bridge's TOPIC_PREFIX, for the subjects Selection
	// reads (default "").
	TopicPrefix string
	// DeadLetterSubject is where the bridge keeps dead letters
	// (DEAD_LETTER_SUBJECT, default bridge.DefaultDeadLetterSubject).
	DeadLetterSubject string
	// RunID names the run in every copy's headers (and, on JetStream, in
	// its Nats-Msg-Id): tokens of [A-Za-z0-9_-], at most MaxRunIDLen.
	RunID string
	// DryRun lists what the run would publish and publishes nothing.
	DryRun bool
	// Out receives one line per selected message, then the summary.
	Out io.Writer
	// Progress, when set, receives a line every ProgressInterval while the
	// run lasts (default DefaultProgressInterval).
	Progress         io.Writer
	ProgressInterval time.Duration
	// PublishTimeout bounds each publish (default DefaultPublishTimeout).
	PublishTimeout time.Duration
}

// Validate reports the first missing or invalid field, wrapping ErrConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Source == nil:
		return bad("no Source")
	case c.Out == nil:
		return bad("no Out")
	case c.Publisher == nil && !c.DryRun:
		return bad("no Publisher (and not a dry run)")
	case c.Router == nil && c.DeadLetters:
		return bad("no Router to redrive dead letters with")
	case len(c.Selection.Reasons) > 0 && !c.DeadLetters:
		return bad("Reasons select dead letters: set DeadLetters")
	case !ValidRunID(c.RunID):
		return bad("RunID %q: want 1 to %d of [A-Za-z0-9_-]", c.RunID, MaxRunIDLen)
	}
	return c.Selection.Validate()
}

// ValidRunID reports whether id can name a run: 1 to MaxRunIDLen of
// [A-Za-z0-9_-].
func ValidRunID(id string) bool {
	return id != "" && len(id) <= MaxRunIDLen && !strings.Contains(id, ".") && bridge.Routable(id)
}

// Summary counts what a run did.
type Summary struct {
	// RunID and DryRun are the Config's.
	RunID  string
	DryRun bool
	// Read counts the messages read; Unreadable and Copies those skipped as
	// not the bridge's, and as copies of earlier runs.
	Read, Unreadable, Copies int
	// Selected counts the messages the Selection chose. Each is then
	// published (Published; in a dry run: would be), answered as a
	// duplicate (Duplicates: by the broker, or selected twice in this run),
	// refused by the broker (Refused), or a dead letter that does not
	// route today (NotRedriven).
	Selected, Published, Duplicates, Refused, NotRedriven int
}

// Incomplete reports whether some selected messages were not published:
// refused, or not redriven.
func (s Summary) Incomplete() bool { return s.Refused+s.NotRedriven > 0 }

// String is the summary line Run writes last.
func (s Summary) String() string {
	var b strings.Builder
	if s.DryRun {
		fmt.Fprintf(&b, "dry run %s, nothing published: %d read, %d selected, %d would be published", s.RunID, s.Read, s.Selected, s.Published)
	} else {
		fmt.Fprintf(&b, "replay run %s: %d read, %d selected, %d published", s.RunID, s.Read, s.Selected, s.Published)
	}
	fmt.Fprintf(&b, ", %d duplicates, %d refused, %d not redriven", s.Duplicates, s.Refused, s.NotRedriven)
	if s.Copies > 0 {
		fmt.Fprintf(&b, ", %d copies of earlier replays skipped", s.Copies)
	}
	if s.Unreadable > 0 {
		fmt.Fprintf(&b, ", %d messages not the bridge's skipped", s.Unreadable)
	}
	return b.String()
}

// Line results.
const (
	resultPublished    = "published"
	resultWould        = "would-publish"
	resultDuplicate    = "duplicate"
	resultRefused      = "refused"
	resultNotRedriven  = "not-redriven"
	notPublishedTarget = "-"
)

// Run reads cfg.Source, writes a line to cfg.Out for every message the
// selection chooses, "<ce-id> <from> -> <to> <result> [reason]" (result
// published, would-publish, duplicate, refused or not-redriven; reason the
// dead-letter reason of a redrive, or why nothing was published), publishes
// the copies unless cfg.DryRun, and ends with the summary line. It blocks
// until the run is over. A refused or unroutable message is reported and
// the run goes on; any other publish failure, a broker failure while
// reading, or ctx ending stops it: the error is returned with the summary
// so far (written to Out as well). Config errors wrap ErrConfig.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	if cfg.DeadLetterSubject == "" {
		cfg.DeadLetterSubject = bridge.DefaultDeadLetterSubject
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = DefaultProgressInterval
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	r := &run{cfg: cfg, seen: map[string]struct{}{}}
	r.sum.RunID, r.sum.DryRun = cfg.RunID, cfg.DryRun
	stopProgress := r.showProgress()
	err := cfg.Source.Read(ctx, r.scope(), func(st *Stored) error {
		// A message read before an interruption is not handled after it.
		if err := ctx.Err(); err != nil {
			return err
		}
		return r.handle(ctx, st)
	})
	stopProgress()
	fmt.Fprintln(cfg.Out, r.sum.String())
	return r.sum, err
}

type run struct {
	cfg  Config
	sum  Summary
	seen map[string]struct{}
	// Counters the progress line reads while the run writes sum.
	read, selected, published atomic.Int64
}

// scope is what the Source must read: the dead-letter subject for a
// redrive, else the events' subjects.
func (r *run) scope() Scope {
	s := Scope{Since: r.cfg.Selection.Since}
	switch {
	case r.cfg.DeadLetters:
		s.Filters = []string{r.cfg.DeadLetterSubject}
	case len(r.cfg.Selection.Events) > 0:
		s.Filters = subjectFilters(r.cfg.TopicPrefix, r.cfg.Selection.Events)
	case r.cfg.TopicPrefix != "":
		s.Filters = []string{r.cfg.TopicPrefix + ">"}
	}
	return s
}

// handle decides what becomes of one stored message.
func (r *run) handle(ctx context.Context, st *Stored) error {
	r.sum.Read++
	r.read.Add(1)
	switch {
	case st.Err != nil:
		r.sum.Unreadable++
		return nil
	case st.Copy:
		r.sum.Copies++
		return nil
	}
	m := &st.Msg
	dead := m.DeadLetterReason != ""
	sel := &r.cfg.Selection
	if dead != r.cfg.DeadLetters || !sel.matchTime(m.Time) || !sel.matchID(m.ID) || !sel.matchReason(m.DeadLetterReason) {
		return nil
	}
	var (
		target    *sinks.Message
		event     = m.Type
		reference string
		why       string // why a dead letter is not redriven
	)
	if dead {
		routed, err := r.route(ctx, m)
		switch {
		case err != nil:
			why = err.Error()
		case routed.DeadLetterReason != "":
			event, reference = routed.Type, referenceKey(&routed)
			why = "still " + routed.DeadLetterReason
			if routed.DeadLetterDetail != "" {
				why += " (" + routed.DeadLetterDetail + ")"
			}
		default:
			event, reference = routed.Type, referenceKey(&routed)
			target = &routed
		}
	} else {
		target = m
		if len(sel.References) > 0 {
			reference = referenceOf(m.Body)
		}
	}
	if !sel.matchEvent(event) || !sel.matchReference(reference) {
		return nil
	}
	r.sum.Selected++
	r.selected.Add(1)
	reason := m.DeadLetterReason
	if target == nil {
		r.sum.NotRedriven++
		r.line(m, notPublishedTarget, resultNotRedriven, join(reason, why))
		return nil
	}
	if r.twice(target) {
		r.sum.Duplicates++
		r.line(m, target.Subject, resultDuplicate, join(reason, "selected twice in this run"))
		return nil
	}
	if r.cfg.DryRun {
		r.countPublished()
		r.line(m, target.Subject, resultWould, reason)
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	receipt, err := r.cfg.Publisher.PublishReplay(pctx, target, r.cfg.RunID, m.Subject)
	cancel()
	switch {
	case errors.Is(err, sinks.ErrSubjectRefused):
		r.sum.Refused++
		r.line(m, target.Subject, resultRefused, join(reason, err.Error()))
	case err != nil:
		return fmt.Errorf("replay: %s from %s to %s: %w", m.ID, m.Subject, target.Subject, err)
	case receipt.Duplicate:
		r.sum.Duplicates++
		r.line(m, target.Subject, resultDuplicate, reason)
	default:
		r.countPublished()
		r.line(m, target.Subject, resultPublished, reason)
	}
	return nil
}

func (r *run) countPublished() {
	r.sum.Published++
	r.published.Add(1)
}

// route routes dead letter m again, keeping its ce-id and ce-time: a
// malformed-data dead letter never routes, since its data is not JSON
// whatever the configuration.
func (r *run) route(ctx context.Context, m *sinks.Message) (sinks.Message, error) {
	if m.DeadLetterReason == sinks.ReasonMalformedData {
		return sinks.Message{}, errors.New("cannot be redriven: its data is not standard JSON, which no configuration changes")
	}
	routed, err := r.cfg.Router.Route(ctx, m.Body)
	if err != nil {
		return sinks.Message{}, err
	}
	// What routing decides comes from the bridge; the rest is the dead
	// letter's: its ce-id (the bridge derives the same from the body), the
	// time the bridge received it, and whatever else the bridge kept of the
	// request (its trace context).
	out := *m
	out.Subject, out.Type, out.Key, out.Body, out.ContentType = routed.Subject, routed.Type, routed.Key, routed.Body, routed.ContentType
	out.DeadLetterReason, out.DeadLetterDetail = routed.DeadLetterReason, routed.DeadLetterDetail
	return out, nil
}

// referenceKey is data.reference of a message the bridge built: its Key,
// unless that is its ce-id (no reference).
func referenceKey(m *sinks.Message) string {
	if m.Key == m.ID {
		return ""
	}
	return m.Key
}

// twice reports whether the run already handled this ce-id for this
// subject (a Kafka topic holding a resend that timed out, a dead letter
// kept twice), remembering up to maxSeen of them.
func (r *run) twice(m *sinks.Message) bool {
	key := m.Subject + " " + m.ID
	if _, ok := r.seen[key]; ok {
		return true
	}
	if len(r.seen) < maxSeen {
		r.seen[key] = struct{}{}
	}
	return false
}

// join puts a dead letter's reason (maybe empty) before what is said of it.
func join(reason, what string) string {
	if reason == "" {
		return what
	}
	return reason + ": " + what
}

// line writes one selected message's line.
func (r *run) line(m *sinks.Message, to, result, reason string) {
	fields := []string{field(m.ID), field(m.Subject), "->", field(to), result}
	if reason != "" {
		fields = append(fields, printable(reason))
	}
	fmt.Fprintln(r.cfg.Out, strings.Join(fields, " "))
}

// field is s as one word of a line: quoted when empty or when it holds
// spaces or characters a terminal would interpret (a stream may hold
// messages from publishers other than the bridge).
func field(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// printable is s, quoted when it holds characters a terminal would
// interpret.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// showProgress writes a progress line every ProgressInterval until the
// returned func is called.
func (r *run) showProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	verb := "published"
	if r.cfg.DryRun {
		verb = "would be published"
	}
	go func() {
		defer close(exited)
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(r.cfg.Progress, "replay: %d read, %d selected, %d %s\n", r.read.Load(), r.selected.Load(), r.published.Load(), verb)
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
