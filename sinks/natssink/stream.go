package natssink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// ErrNotDurable is returned by New for a stream that acknowledges a message
// before it is on disk (persist_mode: async): the bridge's 200 would then
// promise a storage that a crash can undo.
var ErrNotDurable = errors.New("natssink: stream acknowledges writes before they reach the disk (persist_mode async)")

// DefaultDeadLetterSubject is the bridge's default dead-letter subject; a
// stream created without Subjects starts with its family.
const DefaultDeadLetterSubject = "senfenico.unroutable"

// streamDescription marks a stream that the bridge created and so manages:
// New applies Config's limits to it at every start. A stream with another
// description belongs to its operator, who keeps its limits.
const streamDescription = "Senfenico webhook events published by senfenico-bridge"

// maxRefusedFamilies bounds the families remembered as refused. Past it,
// every family no filter covers is refused without asking the server.
const maxRefusedFamilies = 1024

// storageErrorHold is how long Ready keeps failing after a publish the
// store could not write, unless a publish succeeds meanwhile. Senfenico's
// resends renew it while the store stays unable to write; once they stop,
// Ready recovers by itself and the next publish tells again.
const storageErrorHold = 5 * time.Second

// Durability is what the stream promises for a message it acknowledged, as
// read from its configuration.
type Durability struct {
	// Stream is the stream's name.
	Stream string
	// Managed is true for a stream the bridge created (it sets its limits).
	Managed bool
	// Storage is "File" or "Memory".
	Storage string
	// Replicas is the number of servers that hold each message.
	Replicas int
	// MaxAge is how long messages are kept; 0 for ever.
	MaxAge time.Duration
	// MaxBytes is the stream's size limit; -1 or 0 for none.
	MaxBytes int64
	// DiscardNew is true when a full stream refuses new messages rather
	// than deleting old ones.
	DiscardNew bool
}

func durabilityOf(sc jetstream.StreamConfig) Durability {
	return Durability{
		Stream:     sc.Name,
		Managed:    sc.Description == streamDescription,
		Storage:    sc.Storage.String(),
		Replicas:   max(sc.Replicas, 1),
		MaxAge:     sc.MaxAge,
		MaxBytes:   sc.MaxBytes,
		DiscardNew: sc.Discard == jetstream.DiscardNew,
	}
}

// provisionStream creates the stream, or makes an existing one cover
// Config.Subjects with at least Config.DedupWindow; a stream the bridge
// manages also gets Config's retention. It refuses a stream that is not
// durable.
//
// A cluster answers no JetStream request while it elects its leaders (a
// node restarted, all of them starting together): each attempt is bounded
// by ConnectTimeout and retried, with a log line, until ctx ends, as the
// connection itself is. Errors that a retry cannot change end it at once.
func (s *Sink) provisionStreamRetrying(ctx context.Context) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
		err := s.provisionStream(attempt)
		cancel()
		if err == nil || !provisionMayRecover(err) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("nats stream not reachable yet, retrying (a cluster may be electing its leaders)", "stream", s.cfg.Stream, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(s.cfg.ReconnectWait):
		}
	}
}

// provisionMayRecover reports whether a failed stream lookup, creation or
// update may succeed on its own later: no answer in time, no responder yet,
// or JetStream saying it is temporarily unavailable.
func provisionMayRecover(err error) bool {
	if errors.Is(err, ErrNotDurable) {
		return false
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

func (s *Sink) provisionStream(ctx context.Context) error {
	c := s.cfg
	subjects := c.Subjects
	if len(subjects) == 0 {
		// A stream needs a subject; other families are admitted as they come.
		subjects = []string{familyFilter(DefaultDeadLetterSubject)}
	}
	stream, err := s.js.Stream(ctx, c.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		sc := jetstream.StreamConfig{
			Name:        c.Stream,
			Description: streamDescription,
			Subjects:    subjects,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  c.DedupWindow,
			Replicas:    c.Replicas,
		}
		s.applyLimits(&sc)
		stream, err = s.js.CreateStream(ctx, sc)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another bridge instance created it meanwhile.
			return s.provisionStream(ctx)
		}
		if err != nil {
			return unavailable("create stream "+c.Stream, err)
		}
		s.log.Info("nats stream created", "stream", c.Stream, "subjects", subjects)
	case err != nil:
		return unavailable("stream "+c.Stream, err)
	default:
		sc := stream.CachedInfo().Config
		if sc.PersistMode == jetstream.AsyncPersistMode {
			return notDurable(c.Stream)
		}
		want := sc
		want.Subjects = pruneFilters(append(slices.Clone(sc.Subjects), subjects...))
		want.Duplicates = max(sc.Duplicates, c.DedupWindow)
		if sc.Description == streamDescription {
			s.applyLimits(&want)
		} else if sc.MaxAge > 0 && want.Duplicates > sc.MaxAge {
			return unavailable("update stream "+c.Stream, fmt.Errorf("its MaxAge %v is shorter than DedupWindow %v", sc.MaxAge, c.DedupWindow))
		}
		if !sameStreamConfig(sc, want) {
			stream, err = s.js.UpdateStream(ctx, want)
			if err != nil {
				return unavailable("update stream "+c.Stream, err)
			}
			s.log.Info("nats stream updated", "stream", c.Stream, "subjects", want.Subjects)
		}
	}
	sc := stream.CachedInfo().Config
	if sc.PersistMode == jetstream.AsyncPersistMode {
		return notDurable(c.Stream)
	}
	s.stream = stream
	s.streamBytes.Store(stream.CachedInfo().State.Bytes)
	subjects = slices.Clone(sc.Subjects)
	s.filters.Store(&subjects)
	d := durabilityOf(sc)
	s.durability.Store(&d)
	s.log.Info("nats stream durability", "stream", d.Stream, "managed", d.Managed, "storage", d.Storage,
		"replicas", d.Replicas, "max_age", d.MaxAge, "max_bytes", d.MaxBytes, "discard_new", d.DiscardNew,
		"dedup_window", sc.Duplicates, "atomic_batches", sc.AllowAtomicPublish)
	switch info := stream.CachedInfo(); {
	case d.Replicas == 1 && info.Cluster != nil && info.Cluster.Name != "":
		s.log.Warn("nats stream has one replica on a cluster: losing its node loses its events; set NATS_STREAM_REPLICAS=3 for a stream the bridge creates, or raise the stream's replicas",
			"stream", d.Stream, "cluster", info.Cluster.Name)
	case d.Replicas == 1:
		s.log.Info("nats stream has one replica: an acknowledged event lives on one server's disk")
	}
	return nil
}

func notDurable(stream string) error {
	return fmt.Errorf("%w: stream %s; set its persist_mode to default, or name another stream", ErrNotDurable, stream)
}

// applyLimits sets the retention of a stream the bridge manages.
func (s *Sink) applyLimits(sc *jetstream.StreamConfig) {
	sc.Duplicates = max(sc.Duplicates, s.cfg.DedupWindow)
	sc.MaxAge = max(s.cfg.MaxAge, 0) // -1, no limit, is the server's 0
	sc.MaxBytes = s.cfg.MaxBytes
	// Refuse rather than delete what consumers may not have read yet: the
	// publish fails with a 503 and Senfenico resends.
	sc.Discard = jetstream.DiscardNew
	// Lets a round of waiting publishes share one commit (jetstream.go). A
	// server before 2.12 ignores it; the sink then publishes one by one.
	sc.AllowAtomicPublish = true
}

func sameStreamConfig(a, b jetstream.StreamConfig) bool {
	return sameFilters(a.Subjects, b.Subjects) && a.Duplicates == b.Duplicates && a.MaxAge == b.MaxAge &&
		a.MaxBytes == b.MaxBytes && a.Discard == b.Discard && a.AllowAtomicPublish == b.AllowAtomicPublish
}

func sameFilters(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.Contains(b, f) {
			return false
		}
	}
	return true
}

// admit makes sure the stream captures subject before it is published. A
// subject no filter covers is a new event family: admit adds
// familyFilter(subject) to the stream while it holds fewer than
// Config.MaxFamilies filters beyond Config.Subjects. Otherwise, or when
// the server refuses the filter (it would overlap another stream), or for
// a reserved subject, it returns an error wrapping sinks.ErrSubjectRefused,
// and remembers the refusal so that later events of the family do not ask
// again. Errors reaching the server wrap sinks.ErrUnavailable.
func (s *Sink) admit(ctx context.Context, subject string) error {
	if !s.stale.Load() && anyCovers(*s.filters.Load(), subject) {
		return nil
	}
	if reservedSubject(subject) {
		return fmt.Errorf("%w: %s is reserved for the server's own traffic", sinks.ErrSubjectRefused, subject)
	}
	family := familyFilter(subject)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	// The publishes of a new family's first burst all queue here: only the
	// first needs to ask the server.
	if !s.stale.Load() && anyCovers(*s.filters.Load(), subject) {
		return nil
	}
	if _, ok := s.refused[family]; ok {
		return fmt.Errorf("%w: stream %s was refused %s before", sinks.ErrSubjectRefused, s.cfg.Stream, family)
	}
	if len(s.refused) >= maxRefusedFamilies {
		return fmt.Errorf("%w: %d families refused already; no more are tried", sinks.ErrSubjectRefused, len(s.refused))
	}
	// Read the stream afresh: another instance, or an operator, may have
	// changed its subjects since.
	info, err := s.stream.Info(ctx)
	if err != nil {
		return unavailable("stream "+s.cfg.Stream, err)
	}
	s.stale.Store(false)
	sc := info.Config
	// A copy: sc.Subjects is about to change, and the cached list must
	// not change with it if the server refuses.
	current := slices.Clone(sc.Subjects)
	s.filters.Store(&current)
	if anyCovers(current, subject) {
		return nil
	}
	if learnt := s.learntFamilies(current); learnt >= s.cfg.MaxFamilies {
		s.refused[family] = struct{}{}
		s.log.Warn("nats stream holds its maximum of new event families; refusing another", "stream", s.cfg.Stream,
			"filter", family, "max_families", s.cfg.MaxFamilies)
		return fmt.Errorf("%w: stream %s holds %d new families, its maximum", sinks.ErrSubjectRefused, s.cfg.Stream, learnt)
	}
	sc.Subjects = pruneFilters(append(slices.Clone(current), family))
	updated, err := s.js.UpdateStream(ctx, sc)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		s.refused[family] = struct{}{}
		s.log.Warn("nats stream refused a new event family", "stream", s.cfg.Stream, "filter", family, "err", err)
		return fmt.Errorf("%w: stream %s refused %s: %w", sinks.ErrSubjectRefused, s.cfg.Stream, family, err)
	}
	if err != nil {
		return unavailable("add "+family+" to stream "+s.cfg.Stream, err)
	}
	subjects := updated.CachedInfo().Config.Subjects
	s.filters.Store(&subjects)
	s.log.Info("nats stream admitted a new event family", "stream", s.cfg.Stream, "filter", family, "subject", subject)
	return nil
}

// learntFamilies counts the filters the stream holds beyond those
// configured.
func (s *Sink) learntFamilies(filters []string) int {
	n := 0
	for _, f := range filters {
		if !slices.Contains(s.cfg.Subjects, f) {
			n++
		}
	}
	return n
}

// notePublish records what a JetStream publish's outcome says about the
// stream: a success clears a storage failure, a storage error starts one,
// and no stream answering means its subjects changed under the sink.
func (s *Sink) notePublish(err error) {
	switch {
	case err == nil:
		if s.storageFailedAt.Load() != 0 {
			s.storageFailedAt.Store(0)
		}
	case storageError(err):
		s.storageFailedAt.Store(time.Now().UnixNano())
	case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders):
		s.stale.Store(true)
	}
}

// storageError reports whether the server answered that it could not
// write: the stream is at its limits with discard new, the disk is full,
// or the account's quota is used up.
func storageError(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	// nats.go names none of these codes; nats-server's names follow them.
	switch apiErr.ErrorCode {
	case 10023, // JSInsufficientResourcesErr
		10047: // JSStorageResourcesExceededErr
		return true
	case 10077: // JSStreamStoreFailedF: limits with discard new, a failed write
		// A message over the stream's size limit fails alone; the store
		// itself is fine.
		return !strings.Contains(apiErr.Description, "too large")
	}
	return false
}

// storeHealth returns nil when the stream can take a write as far as the
// server tells: JetStream answers for the account, the account's storage
// quota and the stream's limits leave room, and no publish failed for
// storage within storageErrorHold with none succeeding since.
func (s *Sink) storeHealth(ctx context.Context) error {
	if at := s.storageFailedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < storageErrorHold {
		return errors.New("the stream could not store the last publish")
	}
	acct, err := s.js.AccountInfo(ctx)
	if err != nil {
		return fmt.Errorf("JetStream account: %w", err)
	}
	if limit := acct.Limits.MaxStore; limit > 0 && acct.Store >= uint64(limit) {
		return fmt.Errorf("JetStream account storage full (%d of %d bytes)", acct.Store, limit)
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Stream, err)
	}
	if err := streamQuorum(info); err != nil {
		return fmt.Errorf("stream %s: %w", s.cfg.Stream, err)
	}
	d := durabilityOf(info.Config)
	s.durability.Store(&d)
	s.streamBytes.Store(info.State.Bytes)
	if full(info) {
		return fmt.Errorf("stream %s full (%d of %d bytes, %d of %d messages) and refusing new messages",
			s.cfg.Stream, info.State.Bytes, info.Config.MaxBytes, info.State.Msgs, info.Config.MaxMsgs)
	}
	return nil
}

// full reports whether a stream that discards new messages has no room for
// one more: less free space than a large webhook body (capped at a
// hundredth of its size, for small streams), or no message left.
func full(info *jetstream.StreamInfo) bool {
	sc := info.Config
	if sc.Discard != jetstream.DiscardNew {
		return false
	}
	if sc.MaxBytes > 0 {
		margin := min(uint64(sc.MaxBytes)/100, 1<<20)
		if info.State.Bytes+margin >= uint64(sc.MaxBytes) {
			return true
		}
	}
	return sc.MaxMsgs > 0 && info.State.Msgs >= uint64(sc.MaxMsgs)
}
