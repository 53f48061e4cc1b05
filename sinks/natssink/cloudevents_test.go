package natssink_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	cejetstream "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/natssink"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// TestCloudEventsSDKReadsMessages reads what the sink stored in JetStream
// with the official CloudEvents Go SDK's NATS JetStream binding (its own
// consumer, its own decoding), a reader that shares no code with the sink:
// every attribute, the dead-letter extensions and the data must come out
// as the bridge meant them, and each event must pass the SDK's validation.
//
// The SDK (sdk-go v2.16.2) does no percent-decoding: its Message.ReadBinary
// hands each header value over as it is. So a value the binding requires
// encoded (a dead letter's type and detail, which hold spaces, quotes,
// percent signs and non-ASCII) comes out of the SDK in its encoded form,
// which natssink.DecodeHeaderValue turns back into the attribute, as the
// binding tells a receiver to.
func TestCloudEventsSDKReadsMessages(t *testing.T) {
	b := startBroker(t)
	s := newSink(t, b.config(natssink.ModeJetStream))
	subject := sinktest.RandomSubject("cloudevents")

	routed := sinktest.NewMessage(subject)
	unroutable := sinktest.NewMessage(subject)
	unroutable.Type = `checkout..succès ✓ 100% "ok"`
	unroutable.Body = []byte(`{"event": "checkout..succès ✓ 100% \"ok\"", "data": {"reference": "r"}}`)
	unroutable.DeadLetterReason = sinks.ReasonUnroutable
	unroutable.DeadLetterDetail = "event name is not tokens of [A-Za-z0-9_-] joined by dots, or too long"
	malformed := sinktest.NewMessage(subject)
	malformed.Type = "charge.success"
	malformed.Body = []byte("{\"event\": \"charge.success\", \"data\": {\"fees\": NaN}}\xff")
	malformed.ContentType = sinks.ContentTypeOctetStream
	malformed.DeadLetterReason = sinks.ReasonMalformedData
	malformed.DeadLetterDetail = `"data" is not standard JSON (NaN, Infinity or a number beyond a float)`

	tests := []struct {
		name string
		msg  *sinks.Message
		// What the SDK gives for ce-type and the extensions: the header
		// values as the sink encoded them.
		wantType       string
		wantExtensions map[string]any
	}{
		{name: "routed event", msg: routed, wantType: routed.Type, wantExtensions: map[string]any{}},
		{
			name: "unroutable dead letter", msg: unroutable,
			wantType: "checkout..succ%C3%A8s%20%E2%9C%93%20100%25%20%22ok%22",
			wantExtensions: map[string]any{
				"deadletterreason": sinks.ReasonUnroutable,
				"deadletterdetail": "event%20name%20is%20not%20tokens%20of%20[A-Za-z0-9_-]%20joined%20by%20dots,%20or%20too%20long",
			},
		},
		{
			name: "malformed-data dead letter", msg: malformed, wantType: malformed.Type,
			wantExtensions: map[string]any{
				"deadletterreason": sinks.ReasonMalformedData,
				"deadletterdetail": "%22data%22%20is%20not%20standard%20JSON%20(NaN,%20Infinity%20or%20a%20number%20beyond%20a%20float)",
			},
		},
	}
	for _, tc := range tests {
		publish(t, s, tc.msg)
	}

	got := readWithSDK(t, b.Client(t), subject, len(tests))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.msg
			e, ok := got[m.ID]
			if !ok {
				t.Fatalf("the SDK read no event with id %s", m.ID)
			}
			if err := e.Validate(); err != nil {
				t.Errorf("the SDK finds the event invalid: %v", err)
			}
			for _, c := range []struct{ attribute, got, want string }{
				{"specversion", e.SpecVersion(), event.CloudEventsVersionV1},
				{"id", e.ID(), m.ID},
				{"source", e.Source(), sinks.Source},
				{"type", e.Type(), tc.wantType},
				{"datacontenttype", e.DataContentType(), m.DataContentType()},
				// The bridge sets no subject attribute: the NATS subject
				// is the routing.
				{"subject", e.Subject(), ""},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.attribute, c.got, c.want)
				}
			}
			if !e.Time().Equal(m.Time) {
				t.Errorf("time = %v, want %v", e.Time(), m.Time)
			}
			if ext := e.Extensions(); !maps.Equal(ext, tc.wantExtensions) {
				t.Errorf("extensions = %v, want %v", ext, tc.wantExtensions)
			}
			if string(e.Data()) != string(m.Body) {
				t.Errorf("data = %q, want %q", e.Data(), m.Body)
			}
			// Percent-decoding once, as the binding says a receiver does,
			// gives the attributes back.
			decoded := map[string]string{"type": e.Type()}
			for name, v := range e.Extensions() {
				decoded[name], _ = v.(string)
			}
			for name, want := range map[string]string{
				"type": m.Type, "deadletterreason": m.DeadLetterReason, "deadletterdetail": m.DeadLetterDetail,
			} {
				if v, err := natssink.DecodeHeaderValue(decoded[name]); err != nil || v != want {
					t.Errorf("%s percent-decoded = %q, %v; want %q", name, v, err, want)
				}
			}
		})
	}
}

// readWithSDK consumes n events from subject through the SDK's JetStream
// consumer and returns them by id.
func readWithSDK(t *testing.T, nc *nats.Conn, subject string, n int) map[string]event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Acks are not the SDK's business here (its messages' Finish does not
	// ack); AckNone keeps the server from redelivering into a handler that
	// nobody reads from any more.
	c, err := cejetstream.NewConsumerFromConn(nc, natssink.DefaultStream, subject, nil,
		[]nats.SubOpt{nats.DeliverAll(), nats.AckNone()})
	if err != nil {
		t.Fatalf("SDK consumer: %v", err)
	}
	opened := make(chan error, 1)
	go func() { opened <- c.OpenInbound(ctx) }()
	out := make(map[string]event.Event, n)
	for len(out) < n {
		msg, err := c.Receive(ctx)
		if err != nil {
			t.Fatalf("SDK receive after %d of %d events: %v", len(out), n, err)
		}
		if enc := msg.ReadEncoding(); enc != binding.EncodingBinary {
			t.Fatalf("the SDK reads a message in %v mode, want binary", enc)
		}
		e, err := binding.ToEvent(ctx, msg)
		if err != nil {
			t.Fatalf("SDK ToEvent: %v", err)
		}
		if err := msg.Finish(nil); err != nil {
			t.Fatal(err)
		}
		out[e.ID()] = *e
	}
	cancel()
	if err := <-opened; err != nil {
		t.Fatalf("SDK consumer: %v", err)
	}
	if ids := slices.Sorted(maps.Keys(out)); len(ids) != n {
		t.Fatalf("the SDK read ids %v, want %d distinct", ids, n)
	}
	return out
}
