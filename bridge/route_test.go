package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
	"github.com/senfenico-bridge/senfenico-bridge/integration/testkit"
	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/memsink"
)

func TestRoutable(t *testing.T) {
	tests := []struct {
		name  string
		event string
		want  bool
	}{
		{"family and status", "checkout.success", true},
		{"one token", "ping", true},
		{"underscore and dash", "charge.payment_failed-v2", true},
		{"upper case", "Charge.Success", true},
		{"empty", "", false},
		{"leading dot", ".checkout", false},
		{"trailing dot", "checkout.", false},
		{"double dot", "checkout..success", false},
		{"star", "checkout.*", false},
		{"gt", "checkout.>", false},
		{"dollar", "$JS.API.INFO", false},
		{"space", "checkout success", false},
		{"tab", "checkout\tsuccess", false},
		{"non-ASCII", "café.ok", false},
		{"slash", "a/b", false},
		{"NUL", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Routable(tt.event); got != tt.want {
				t.Fatalf("Routable(%q) = %v, want %v", tt.event, got, tt.want)
			}
		})
	}
}

func TestSubjectLength(t *testing.T) {
	r := router{prefix: "payments."}
	fits := strings.Repeat("a", MaxSubjectLen-len("payments."))
	if got, ok := r.subject(fits); !ok || got != "payments."+fits {
		t.Fatalf("a %d-character subject was refused", MaxSubjectLen)
	}
	if _, ok := r.subject(fits + "a"); ok {
		t.Fatalf("a %d-character subject was accepted", MaxSubjectLen+1)
	}
}

// routablePattern is the rule written as a regular expression, the oracle of
// FuzzRoutable.
var routablePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

func FuzzRoutable(f *testing.F) {
	for _, s := range []string{"checkout.success", "a..b", "$x", "a.>", "", "é", "a b", strings.Repeat("x.", 130)} {
		f.Add(s)
	}
	r := router{prefix: "p.", deadLetterSubject: DefaultDeadLetterSubject}
	f.Fuzz(func(t *testing.T, event string) {
		if got, want := Routable(event), routablePattern.MatchString(event); got != want {
			t.Fatalf("Routable(%q) = %v, the pattern says %v", event, got, want)
		}
		subject, ok := r.subject(event)
		if ok != (routablePattern.MatchString(event) && len("p."+event) <= MaxSubjectLen) || (ok && subject != "p."+event) {
			t.Fatalf("subject(%q) = %q, %v", event, subject, ok)
		}
		if a := attribute(event, maxTypeHeader); len(a) > maxTypeHeader || !utf8.ValidString(a) || strings.ContainsFunc(a, func(r rune) bool { return !allowed(r, utf8.RuneLen(r)) }) {
			t.Fatalf("attribute(%q) = %q: too long, or not a CloudEvents string", event, a)
		}
	})
}

// TestAttribute: a dead letter's ce-type and detail are CloudEvents strings
// (plain text; percent-encoding is the NATS sink's job), cut at a bound
// without splitting a character.
func TestAttribute(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{name: "printable ASCII as is", in: `a "b" 100%`, max: 16, want: `a "b" 100%`},
		{name: "non-ASCII as is", in: "café ✓ 😀", max: 32, want: "café ✓ 😀"},
		{name: "controls", in: "a\nb\x00c\x7fd\u0085e", max: 32, want: "a\uFFFDb\uFFFDc\uFFFDd\uFFFDe"},
		{name: "invalid UTF-8", in: "a\xffb\xc3", max: 32, want: "a\uFFFDb\uFFFD"},
		{name: "noncharacters", in: "a\uFDD0b\uFFFEc\U0010FFFF", max: 32, want: "a\uFFFDb\uFFFDc\uFFFD"},
		{name: "cut", in: "abcdef", max: 4, want: "abcd"},
		{name: "cut before a character that does not fit", in: "abc\u00e9", max: 4, want: "abc"},
		{name: "cut before a replacement that does not fit", in: "ab\n", max: 4, want: "ab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := attribute(tc.in, tc.max); got != tc.want {
				t.Fatalf("attribute(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _ = attribute("checkout success", maxTypeHeader) }); n != 0 {
		t.Errorf("attribute allocates %v times for printable ASCII, want 0", n)
	}
}

// TestClassify: every verified notification becomes exactly one message,
// routed under its own name or dead-lettered with the reason that applies.
func TestClassify(t *testing.T) {
	invalid := fakeValidator{errors.New("data.amount: want integer")}
	tests := []struct {
		name        string
		edit        func(*Config)
		event       string
		data        string
		wantSubject string
		wantReason  string
	}{
		{"documented family", nil, "checkout.success", `{}`, "checkout.success", ""},
		{"new family routed by default", nil, "refund.created", `{}`, "refund.created", ""},
		{"NATS inbox", nil, "_INBOX.x", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"NATS reply", nil, "_R_.abc", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"Kafka offsets", nil, "__consumer_offsets", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"Kafka transactions", nil, "__transaction_state", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"schema registry", nil, "_schemas", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"reserved inner token", nil, "checkout._x", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"dead-letter subject itself", nil, DefaultDeadLetterSubject, `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"under the dead-letter subject", nil, DefaultDeadLetterSubject + ".x", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"dead-letter subject under the prefix", func(c *Config) {
			c.TopicPrefix, c.DeadLetterSubject = "payments.", "payments.dead"
		}, "dead.x", `{}`, "payments.dead", sinks.ReasonReserved},
		{"same name as the dead-letter subject outside the prefix", func(c *Config) {
			c.TopicPrefix = "payments."
		}, DefaultDeadLetterSubject, `{}`, "payments." + DefaultDeadLetterSubject, ""},
		{"system subject", nil, "$SYS.x", `{}`, DefaultDeadLetterSubject, sinks.ReasonUnroutable},
		{"listed family", func(c *Config) { c.Families = []string{"checkout", "refund"} }, "refund.created", `{}`, "refund.created", ""},
		{"family not listed", func(c *Config) { c.Families = []string{"checkout"} }, "refund.created", `{}`, DefaultDeadLetterSubject, ReasonFamilyNotListed},
		{"reserved beats listed", func(c *Config) { c.Families = []string{"checkout"} }, "_INBOX.x", `{}`, DefaultDeadLetterSubject, sinks.ReasonReserved},
		{"malformed data", nil, "charge.success", `"not json"`, DefaultDeadLetterSubject, sinks.ReasonMalformedData},
		{"schema-invalid in enforce mode", func(c *Config) { c.SchemaMode, c.Validator = SchemaEnforce, invalid }, "charge.success", `{}`, DefaultDeadLetterSubject, sinks.ReasonSchema},
		{"schema-invalid in warn mode", func(c *Config) { c.SchemaMode, c.Validator = SchemaWarn, invalid }, "charge.success", `{}`, "charge.success", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := memsink.New()
			s := newTestServer(t, sink, tt.edit)
			body := `{"event": "` + tt.event + `", "data": ` + tt.data + `}`
			rec := post(t, s.Handler(), body, signed(body, testKey))
			if rec.Code != http.StatusOK || len(sink.Messages()) != 1 {
				t.Fatalf("status %d with %d messages, want 200 and 1", rec.Code, len(sink.Messages()))
			}
			m := sink.Messages()[0]
			if m.Subject != tt.wantSubject || m.DeadLetterReason != tt.wantReason {
				t.Fatalf("subject %q reason %q, want %q %q", m.Subject, m.DeadLetterReason, tt.wantSubject, tt.wantReason)
			}
			if a := decodeAccepted(t, rec); a.Subject != tt.wantSubject || a.ID != m.ID {
				t.Fatalf("answered %+v for message %s on %s", a, m.ID, m.Subject)
			}
			if tt.wantReason != "" && (string(m.Body) != body || m.DeadLetterDetail == "") {
				t.Fatalf("dead letter body %q detail %q, want the request body and a detail", m.Body, m.DeadLetterDetail)
			}
			if got := testutil.ToFloat64(s.metrics.requests[outcomeOf(tt.wantReason)]); got != 1 {
				t.Fatalf("outcome %v counted %v times", outcomeOf(tt.wantReason), got)
			}
		})
	}
}

// refusingSink refuses every subject but the dead-letter subject, as a
// JetStream stream that may not capture a new family does.
func refusingSink(refuseDeadLetters bool) *memsink.Sink {
	sink := memsink.New(memsink.WithDedupByID())
	sink.SetHook(func(_ context.Context, msg *sinks.Message) error {
		if msg.Subject != DefaultDeadLetterSubject || refuseDeadLetters {
			return fmt.Errorf("stream: %s: %w", msg.Subject, sinks.ErrSubjectRefused)
		}
		return nil
	})
	return sink
}

func TestSubjectRefusedBecomesDeadLetter(t *testing.T) {
	sink := refusingSink(false)
	var logs testkit.Buffer
	s := newTestServer(t, sink, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	body := `{"event": "refund.created", "data": {"reference": "r-1"}}`
	rec := post(t, s.Handler(), body, signed(body, testKey))
	if rec.Code != http.StatusOK || len(sink.Messages()) != 1 {
		t.Fatalf("status %d with %d messages", rec.Code, len(sink.Messages()))
	}
	// The operator learns why from the request's log line.
	if !strings.Contains(logs.String(), "reason=subject_refused") || !strings.Contains(logs.String(), "stream: refund.created: sinks: subject refused") {
		t.Errorf("the log line does not say why the subject was refused:\n%s", logs.String())
	}
	m := sink.Messages()[0]
	want := webhook.DocumentID([]byte(body))
	if m.Subject != DefaultDeadLetterSubject || m.DeadLetterReason != sinks.ReasonSubjectRefused || m.ID != want ||
		m.Type != "refund.created" || string(m.Body) != body || !strings.Contains(m.DeadLetterDetail, "refund.created") {
		t.Fatalf("published %+v, want a subject-refused dead letter with ID %s", m, want)
	}
	if a := decodeAccepted(t, rec); a.Subject != DefaultDeadLetterSubject || a.ID != want || a.Duplicate {
		t.Fatalf("answered %+v", a)
	}
	// The resend is the same dead letter: a duplicate.
	if a := decodeAccepted(t, post(t, s.Handler(), body, signed(body, testKey))); !a.Duplicate || len(sink.Messages()) != 1 {
		t.Fatalf("resend answered %+v with %d messages stored", a, len(sink.Messages()))
	}

	t.Run("dead letter refused too", func(t *testing.T) {
		sink := refusingSink(true)
		rec := post(t, newTestServer(t, sink, nil).Handler(), body, signed(body, testKey))
		if rec.Code != http.StatusServiceUnavailable || len(sink.Messages()) != 0 {
			t.Fatalf("status %d with %d messages, want 503 and none", rec.Code, len(sink.Messages()))
		}
	})
}
