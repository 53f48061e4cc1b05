// Package loadgen sends signed Senfenico notifications to a webhook endpoint
// the way Senfenico does, measures the answers, and can count what a real
// subscriber of the broker received, so that "answered 200" and "delivered"
// are compared instead of assumed.
//
// Every notification is distinct (a fresh data.reference) and built and
// signed before the run, so generation costs nothing during it. Two loops:
//
//   - open loop (Config.Rate > 0): notification i is due at start + i/Rate
//     whatever happened to the others, and its latency is measured from that
//     due time, so a slow server cannot hide its stalls by slowing the
//     generator down (coordinated omission);
//   - closed loop (Config.Rate 0): Config.Concurrency workers each send the
//     next notification as soon as their previous one was answered.
//
// With Config.Resend, a notification that is not answered 200 (or fails in
// transport) is sent again after a backoff, as Senfenico does for an hour.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
)

// Defaults applied to zero fields of Config.
const (
	// DefaultEvent is the event name of every notification.
	DefaultEvent = "charge.success"
	// DefaultConcurrency is the number of workers of the closed loop.
	DefaultConcurrency = 16
	// DefaultMaxInFlight caps the requests in flight in the open loop.
	DefaultMaxInFlight = 512
	// DefaultTimeout bounds one HTTP attempt.
	DefaultTimeout = 30 * time.Second
	// DefaultResendFor is how long Senfenico keeps resending a notification.
	DefaultResendFor = time.Hour
	// DefaultResendBackoff is the pause before the first resend; it doubles
	// up to DefaultResendBackoffMax.
	DefaultResendBackoff = 100 * time.Millisecond
	// DefaultResendBackoffMax caps the pause between resends.
	DefaultResendBackoffMax = 5 * time.Second
	// DefaultSettleTimeout is how long to wait for deliveries once nothing
	// new arrives.
	DefaultSettleTimeout = 5 * time.Second
)

// StatusTransportError is the key of Summary.Status for attempts that got no
// HTTP answer (refused connection, reset, timeout).
const StatusTransportError = "error"

// ErrConfig is wrapped by the errors of Config.Validate.
var ErrConfig = errors.New("loadgen: invalid config")

// Config describes one run. The zero value is not usable: set URL, Key and
// Count (or Rate and Duration).
type Config struct {
	// URL is the webhook endpoint, e.g.
	// "http://127.0.0.1:8080/webhooks/senfenico". Required.
	URL string
	// Key is the webhook secret every body is signed with. Required.
	Key string
	// Event is the event name of every notification. Default DefaultEvent.
	Event string
	// Count is the number of distinct notifications, all built before the
	// run starts (about 0.7 KB each). Default, in the open loop only:
	// Rate × Duration.
	Count int
	// Duration, when positive, stops starting notifications once it has
	// elapsed; those already started finish (resends included). Default 0:
	// send all Count.
	Duration time.Duration
	// Rate, when positive, selects the open loop: notifications are due at
	// fixed intervals of 1/Rate seconds. Default 0: closed loop.
	Rate float64
	// Concurrency is the number of workers in the closed loop (default
	// DefaultConcurrency) and the cap on requests in flight in the open loop
	// (default DefaultMaxInFlight); a due notification waits for a free slot
	// and that wait counts in its latency.
	Concurrency int
	// Timeout bounds one HTTP attempt. Default DefaultTimeout.
	Timeout time.Duration

	// Resend makes every notification that is not answered 200 go again
	// after a backoff, until it gets its 200 or ResendFor has passed since
	// it was first due. Default false: one attempt each.
	Resend bool
	// ResendFor is how long a notification is resent. Default
	// DefaultResendFor.
	ResendFor time.Duration
	// ResendBackoff is the pause before the first resend of a notification;
	// it doubles after each attempt up to ResendBackoffMax. Defaults
	// DefaultResendBackoff and DefaultResendBackoffMax.
	ResendBackoff    time.Duration
	ResendBackoffMax time.Duration

	// Subscriber, when set, is started before the first request and counts
	// what a real subscriber received. Default nil: no delivery counting.
	Subscriber Subscriber
	// SettleTimeout is how long Run keeps waiting for deliveries after the
	// last answer once no new one arrives. Run stops earlier when every
	// notification was answered 200 and delivered. Default
	// DefaultSettleTimeout.
	SettleTimeout time.Duration

	// Client sends the requests. Default: a client whose transport keeps
	// enough idle connections for Concurrency, so connections are reused.
	Client *http.Client
	// Logger receives progress lines. Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Event == "" {
		c.Event = DefaultEvent
	}
	if c.Count == 0 && c.Rate > 0 && c.Duration > 0 {
		c.Count = int(math.Ceil(c.Rate * c.Duration.Seconds()))
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
		if c.Rate > 0 {
			c.Concurrency = DefaultMaxInFlight
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ResendFor == 0 {
		c.ResendFor = DefaultResendFor
	}
	if c.ResendBackoff == 0 {
		c.ResendBackoff = DefaultResendBackoff
	}
	if c.ResendBackoffMax == 0 {
		c.ResendBackoffMax = DefaultResendBackoffMax
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = DefaultSettleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every invalid field, in an error wrapping ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("field URL is required"))
	}
	if c.Key == "" {
		errs = append(errs, errors.New("field Key is required"))
	}
	if c.Count <= 0 {
		errs = append(errs, errors.New("field Count must be positive (or set Rate and Duration)"))
	}
	if c.Rate < 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		errs = append(errs, fmt.Errorf("field Rate %v: want a finite value ≥ 0", c.Rate))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Duration", c.Duration}, {"Timeout", c.Timeout}, {"ResendFor", c.ResendFor},
		{"ResendBackoff", c.ResendBackoff}, {"ResendBackoffMax", c.ResendBackoffMax}, {"SettleTimeout", c.SettleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("field %s %s is negative", d.name, d.v))
		}
	}
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("field Concurrency %d is negative", c.Concurrency))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
}

// Latency summarises durations, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Delivery counts compare what was answered 200 with what a subscriber
// received. Deliveries whose reference is not one of the run's (older
// messages, other publishers) are counted in Foreign and otherwise ignored.
type Deliveries struct {
	// Source names the subscriber ("nats-core", "nats-jetstream", "kafka").
	Source string `json:"source"`
	// Unique is the number of distinct ce-ids received for the run's
	// notifications.
	Unique int `json:"delivered_unique"`
	// Duplicates counts messages whose ce-id had been received already.
	Duplicates int `json:"duplicates_seen"`
	// Lost counts notifications answered 200 that were never received.
	Lost int `json:"lost"`
	// WithoutOK counts notifications received but never answered 200 (the
	// broker stored them; the answer was lost or an error).
	WithoutOK int `json:"delivered_without_200"`
	// ReferenceConflicts counts messages carrying a run's reference under a
	// ce-id other than the first one seen for it: duplicates that a consumer
	// deduplicating on ce-id would not catch.
	ReferenceConflicts int `json:"reference_id_conflicts"`
	// Foreign counts messages that belong to no notification of the run.
	Foreign int `json:"foreign"`
	// Unparsable counts messages whose body was not an event with a
	// data.reference.
	Unparsable int `json:"unparsable"`
}

// Summary is the outcome of a run. Latencies cover the first attempt of each
// notification, from the moment it was due (open loop) or taken by a worker
// (closed loop) to its answer, whatever the answer was.
type Summary struct {
	// Mode is "rate" (open loop) or "concurrency" (closed loop).
	Mode        string  `json:"mode"`
	Rate        float64 `json:"rate,omitempty"`
	Concurrency int     `json:"concurrency"`
	Event       string  `json:"event"`
	// Notifications is the number of notifications started (first attempt
	// made), at most Config.Count.
	Notifications int `json:"notifications"`
	// Requests is the number of HTTP attempts, resends included.
	Requests int `json:"requests"`
	// ElapsedSeconds runs from the first due time to the last answer.
	ElapsedSeconds float64 `json:"elapsed_s"`
	// RequestsPerSecond is Requests / ElapsedSeconds.
	RequestsPerSecond float64 `json:"requests_per_second"`
	Latency           Latency `json:"latency"`
	// Status counts answers by HTTP status code, and transport failures
	// under StatusTransportError.
	Status map[string]int `json:"status"`
	// LastError is the text of the last transport failure, if any.
	LastError string `json:"last_error,omitempty"`
	// Answered200 is the number of notifications that got a 200.
	Answered200 int `json:"answered_200"`
	// NotAnswered200 is the number of notifications started that never got
	// a 200 (one attempt without Resend; ResendFor exhausted with it).
	NotAnswered200 int `json:"not_answered_200"`
	// Resends is the number of attempts after the first; EventsResent the
	// number of notifications sent more than once.
	Resends      int `json:"resends"`
	EventsResent int `json:"events_resent"`
	// TimeTo200 summarises, over notifications answered 200, the time from
	// their due time to the 200 (resends included).
	TimeTo200 Latency `json:"time_to_200"`
	// Deliveries is set when Config.Subscriber is.
	Deliveries *Deliveries `json:"deliveries,omitempty"`
}

// state is what happened to one notification. Only the goroutine handling
// the notification writes it, and Run reads it after they all finished.
type state struct {
	ok         bool
	attempts   int
	firstDelay time.Duration
	okDelay    time.Duration
}

type runner struct {
	cfg    Config
	notifs []Notification
	states []state
	client *http.Client
	slots  chan struct{} // open loop: one token per request in flight

	mu        sync.Mutex
	status    map[string]int
	lastError string
	lastDone  time.Time
}

// Run builds Config.Count notifications, sends them as configured, waits for
// the subscriber to settle, and returns the summary. It blocks for the whole
// run. When ctx ends early, requests in flight are cancelled and Run returns
// the summary of what happened so far together with ctx's error. Other
// errors (invalid Config, a subscriber that cannot start) come before any
// request is sent. Run may be called concurrently with other Runs.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	cfg = cfg.withDefaults()
	notifs, err := Build(cfg.Event, cfg.Key, cfg.Count)
	if err != nil {
		return Summary{}, err
	}
	r := &runner{
		cfg:    cfg,
		notifs: notifs,
		states: make([]state, len(notifs)),
		client: cfg.Client,
		status: map[string]int{},
	}
	if r.client == nil {
		r.client = newClient(cfg.Concurrency)
		defer r.client.CloseIdleConnections()
	}

	var tr *tracker
	if cfg.Subscriber != nil {
		tr = newTracker(notifs)
		if err := cfg.Subscriber.Start(ctx, tr.observe); err != nil {
			return Summary{}, fmt.Errorf("loadgen: start subscriber %s: %w", cfg.Subscriber.Name(), err)
		}
		defer cfg.Subscriber.Close()
	}

	cfg.Logger.Info("run starting", slog.Int("notifications", len(notifs)), slog.Float64("rate", cfg.Rate),
		slog.Int("concurrency", cfg.Concurrency), slog.Bool("resend", cfg.Resend))
	start := time.Now()
	if cfg.Rate > 0 {
		r.openLoop(ctx, start)
	} else {
		r.closedLoop(ctx, start)
	}
	end := r.lastDone
	if end.IsZero() {
		end = time.Now()
	}
	sum := r.summary(end.Sub(start))
	if tr != nil {
		tr.settle(ctx, r.states, cfg.SettleTimeout)
		d := tr.count(r.states)
		d.Source = cfg.Subscriber.Name()
		sum.Deliveries = &d
	}
	cfg.Logger.Info("run finished", slog.Int("requests", sum.Requests), slog.Int("answered_200", sum.Answered200))
	return sum, ctx.Err()
}

// newClient returns a client that keeps up to conns idle connections to the
// endpoint: with the default of 2, most requests of a concurrent run would
// open a fresh connection and the run would measure TCP setup.
func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// openLoop starts notification i at start + i/Rate, each in its own
// goroutine; r.slots caps how many are in flight.
func (r *runner) openLoop(ctx context.Context, start time.Time) {
	r.slots = make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := range r.notifs {
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / r.cfg.Rate))
		if r.cfg.Duration > 0 && due.Sub(start) >= r.cfg.Duration {
			break
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() { r.deliver(ctx, i, due) })
	}
	wg.Wait()
}

// closedLoop runs Concurrency workers that take the next notification as
// soon as they are free.
func (r *runner) closedLoop(ctx context.Context, start time.Time) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(r.notifs) {
					return
				}
				now := time.Now()
				if r.cfg.Duration > 0 && now.Sub(start) >= r.cfg.Duration {
					return
				}
				r.deliver(ctx, i, now)
			}
		})
	}
	wg.Wait()
}

// deliver sends notification i, due at due, and resends it as Senfenico
// would when Config.Resend is set.
func (r *runner) deliver(ctx context.Context, i int, due time.Time) {
	st := &r.states[i]
	deadline := due.Add(r.cfg.ResendFor)
	backoff := r.cfg.ResendBackoff
	for {
		if r.slots != nil {
			select {
			case r.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		code, err := r.post(ctx, &r.notifs[i])
		if r.slots != nil {
			<-r.slots
		}
		now := time.Now()
		if ctx.Err() != nil && err != nil {
			// Cancelled by the caller: not an answer from the server.
			return
		}
		st.attempts++
		r.record(code, err, now)
		if st.attempts == 1 {
			st.firstDelay = now.Sub(due)
		}
		if code == http.StatusOK {
			st.ok = true
			st.okDelay = now.Sub(due)
			return
		}
		if !r.cfg.Resend || now.Add(backoff).After(deadline) {
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, r.cfg.ResendBackoffMax)
	}
}

// post sends one attempt and returns the status code, or an error when no
// answer came.
func (r *runner) post(ctx context.Context, n *Notification) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, bytes.NewReader(n.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.HeaderName, n.Signature)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Reading the body to its end lets the connection be reused.
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// record counts one answer.
func (r *runner) record(code int, err error, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.status[StatusTransportError]++
		r.lastError = err.Error()
	} else {
		r.status[strconv.Itoa(code)]++
	}
	if at.After(r.lastDone) {
		r.lastDone = at
	}
}

// summary computes the summary from the states; call it once every
// notification's goroutine has returned.
func (r *runner) summary(elapsed time.Duration) Summary {
	s := Summary{
		Mode:        "concurrency",
		Concurrency: r.cfg.Concurrency,
		Event:       r.cfg.Event,
		Status:      r.status,
		LastError:   r.lastError,
	}
	if r.cfg.Rate > 0 {
		s.Mode, s.Rate = "rate", r.cfg.Rate
	}
	var first, toOK []time.Duration
	for _, st := range r.states {
		if st.attempts == 0 {
			continue
		}
		s.Notifications++
		s.Requests += st.attempts
		s.Resends += st.attempts - 1
		if st.attempts > 1 {
			s.EventsResent++
		}
		first = append(first, st.firstDelay)
		if st.ok {
			s.Answered200++
			toOK = append(toOK, st.okDelay)
		} else {
			s.NotAnswered200++
		}
	}
	s.ElapsedSeconds = elapsed.Seconds()
	if s.ElapsedSeconds > 0 {
		s.RequestsPerSecond = float64(s.Requests) / s.ElapsedSeconds
	}
	s.Latency = summarise(first)
	s.TimeTo200 = summarise(toOK)
	return s
}

// summarise returns nearest-rank percentiles of ds, in milliseconds.
func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(ds)))) - 1
		return ms(ds[max(i, 0)])
	}
	var total time.Duration
	for _, d := range ds {
		total += d
	}
	return Latency{
		P50:  rank(50),
		P90:  rank(90),
		P99:  rank(99),
		Max:  ms(ds[len(ds)-1]),
		Mean: ms(total / time.Duration(len(ds))),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
