package loadgen

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Delivery is one message a subscriber received.
type Delivery struct {
	// ID is the message's ce-id (ce_id on Kafka); empty when it had none.
	ID string
	// Reference is data.reference from the message body; empty when the
	// body is not an event with a string data.reference.
	Reference string
}

// Subscriber receives what the bridge published, as a consumer would.
// Implementations: NewNATSSubscriber, NewKafkaSubscriber.
type Subscriber interface {
	// Name identifies the source in the summary.
	Name() string
	// Start subscribes and returns once every message published from then
	// on will be passed to deliver. deliver may be called from several
	// goroutines at once, until Close returns.
	Start(ctx context.Context, deliver func(Delivery)) error
	// Close stops receiving and releases the connection.
	Close() error
}

// ParseDelivery returns the Delivery of a message with ce-id id and body
// body ({"event": ..., "data": {"reference": ...}}, as the bridge publishes).
func ParseDelivery(id string, body []byte) Delivery {
	var env struct {
		Data struct {
			Reference string `json:"reference"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &env) != nil {
		return Delivery{ID: id}
	}
	return Delivery{ID: id, Reference: env.Data.Reference}
}

// tracker matches deliveries to the run's notifications.
type tracker struct {
	byRef map[string]int // reference -> notification index

	mu         sync.Mutex
	ids        map[string]struct{}
	firstID    []string // per notification: ce-id of its first delivery
	received   []int    // per notification: distinct ce-ids received
	d          Deliveries
	lastChange time.Time
	delivered  int // notifications received at least once
}

func newTracker(notifs []Notification) *tracker {
	t := &tracker{
		byRef:      make(map[string]int, len(notifs)),
		ids:        make(map[string]struct{}, len(notifs)),
		firstID:    make([]string, len(notifs)),
		received:   make([]int, len(notifs)),
		lastChange: time.Now(),
	}
	for i, n := range notifs {
		t.byRef[n.Reference] = i
	}
	return t
}

// observe is the deliver function given to the Subscriber.
func (t *tracker) observe(d Delivery) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d.Reference == "" {
		t.d.Unparsable++
		return
	}
	i, ok := t.byRef[d.Reference]
	if !ok {
		t.d.Foreign++
		return
	}
	t.lastChange = time.Now()
	if d.ID != "" {
		if _, seen := t.ids[d.ID]; seen {
			t.d.Duplicates++
			return
		}
		t.ids[d.ID] = struct{}{}
	} else if t.received[i] > 0 {
		// Without a ce-id only the reference can tell a repeat.
		t.d.Duplicates++
		return
	}
	if t.received[i] > 0 && t.firstID[i] != d.ID {
		t.d.ReferenceConflicts++
	}
	if t.received[i] == 0 {
		t.firstID[i] = d.ID
		t.delivered++
	}
	t.received[i]++
	t.d.Unique++
}

// settle waits until every notification answered 200 was delivered (when
// all started ones were answered 200), or no delivery arrived for idle, or
// ctx ends. states must be final.
func (t *tracker) settle(ctx context.Context, states []state, idle time.Duration) {
	ok, started := 0, 0
	for _, st := range states {
		if st.attempts > 0 {
			started++
		}
		if st.ok {
			ok++
		}
	}
	t.mu.Lock()
	// The idle clock starts with the wait, not with the last delivery seen
	// during the run.
	t.lastChange = time.Now()
	t.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		done := ok == started && t.delivered >= ok
		quiet := time.Since(t.lastChange) >= idle
		t.mu.Unlock()
		if done || quiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// count compares deliveries with answers.
func (t *tracker) count(states []state) Deliveries {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.d
	for i, st := range states {
		switch {
		case st.ok && t.received[i] == 0:
			d.Lost++
		case !st.ok && t.received[i] > 0:
			d.WithoutOK++
		}
	}
	return d
}
