package natssink

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
	"github.com/senfenico-bridge/senfenico-bridge/sinks/sinktest"
)

// encode's allocations are what each publish pays now that nothing is
// pooled (BENCHMARKS.md, "Allocations per request"): the value array, the
// header map (its header and, up to eight entries, one group of slots), the
// message and the string holding ce-time and the percent-encoded values. A
// dead letter's ninth and tenth headers make the map a table (two more);
// its encoded type and detail share that string. The trace headers share
// the value array and cost nothing of their own: a message without them
// pays what it did before they existed, and a routed event with them pays
// for the table its ninth header needs, as a dead letter does. A header
// added later as its own slice, a map hint that no longer fits, or an
// encoded value given a string of its own, shows here first.
func TestEncodeAllocations(t *testing.T) {
	routed := sinktest.NewMessage("charge.success")
	deadLetter := sinktest.NewMessage("senfenico.deadletter")
	deadLetter.DeadLetterReason = sinks.ReasonUnroutable
	deadLetter.DeadLetterDetail = "no event name"
	encoded := sinktest.NewMessage("senfenico.deadletter")
	encoded.Type = `checkout "succès"`
	encoded.ContentType = sinks.ContentTypeOctetStream
	encoded.DeadLetterReason = sinks.ReasonMalformedData
	encoded.DeadLetterDetail = `"data" string is not JSON`
	traced := sinktest.NewMessage("charge.success")
	traced.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracedState := sinktest.NewMessage("charge.success")
	tracedState.TraceParent = traced.TraceParent
	tracedState.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	tracedDeadLetter := sinktest.NewMessage("senfenico.deadletter")
	tracedDeadLetter.DeadLetterReason, tracedDeadLetter.DeadLetterDetail = deadLetter.DeadLetterReason, deadLetter.DeadLetterDetail
	tracedDeadLetter.TraceParent, tracedDeadLetter.TraceState = tracedState.TraceParent, tracedState.TraceState
	for _, tc := range []struct {
		name string
		msg  *sinks.Message
		want float64
	}{
		{"routed event, eight headers", routed, 5},
		{"dead letter, ten headers", deadLetter, 7},
		{"dead letter with an encoded type and detail", encoded, 7},
		{"routed event with a traceparent, nine headers", traced, 7},
		{"routed event with a traceparent and a tracestate, ten headers", tracedState, 7},
		{"dead letter with a traceparent and a tracestate, twelve headers", tracedDeadLetter, 7},
	} {
		got := testing.AllocsPerRun(200, func() { _ = encode(tc.msg) })
		if got != tc.want {
			t.Errorf("%s: encode makes %.0f allocations, want %.0f", tc.name, got, tc.want)
		}
	}
}

func TestEncodeHeaderValues(t *testing.T) {
	m := sinktest.NewMessage("senfenico.deadletter")
	m.Type = "checkout success ✓"
	m.ContentType = sinks.ContentTypeOctetStream
	m.DeadLetterReason = sinks.ReasonMalformedData
	m.DeadLetterDetail = `"data" is 100% not JSON`
	h := encode(m).Header
	for _, c := range []struct{ header, want string }{
		{HeaderID, m.ID},
		{HeaderMsgID, m.ID},
		{HeaderType, "checkout%20success%20%E2%9C%93"},
		{HeaderDataContentType, sinks.ContentTypeOctetStream},
		{HeaderContentType, sinks.ContentTypeOctetStream},
		{HeaderDeadLetterReason, sinks.ReasonMalformedData},
		{HeaderDeadLetterDetail, "%22data%22%20is%20100%25%20not%20JSON"},
		{HeaderTime, m.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")},
	} {
		if got := h.Get(c.header); got != c.want {
			t.Errorf("%s = %q, want %q", c.header, got, c.want)
		}
	}
}

// The trace context goes out under the W3C names, as it is (a tracestate's
// spaces and "=" are not percent-encoded), and comes back through Decode;
// a message without it has no trace header at all.
func TestEncodeTraceHeaders(t *testing.T) {
	m := sinktest.NewMessage("charge.success")
	m.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	m.TraceState = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"
	nm := encode(m)
	if got := nm.Header[HeaderTraceParent]; len(got) != 1 || got[0] != m.TraceParent {
		t.Errorf("traceparent = %q, want [%q]", got, m.TraceParent)
	}
	if got := nm.Header[HeaderTraceState]; len(got) != 1 || got[0] != m.TraceState {
		t.Errorf("tracestate = %q, want [%q]", got, m.TraceState)
	}
	d, err := Decode(nm)
	if err != nil {
		t.Fatal(err)
	}
	if d.TraceParent != m.TraceParent || d.TraceState != m.TraceState {
		t.Errorf("Decode: TraceParent %q, TraceState %q; want %q, %q", d.TraceParent, d.TraceState, m.TraceParent, m.TraceState)
	}
	plain := encode(sinktest.NewMessage("charge.success"))
	for _, k := range []string{HeaderTraceParent, HeaderTraceState} {
		if _, ok := plain.Header[k]; ok {
			t.Errorf("a message without trace context has a %s header", k)
		}
	}
}

// escape is writeEscaped into a string of its own.
func escape(s string) string {
	var b strings.Builder
	writeEscaped(&b, s)
	return b.String()
}

func TestHeaderValueEscaping(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "nothing to encode", in: "checkout.success", want: "checkout.success"},
		{name: "printable ASCII but space, quote and percent", in: "!#$&'()*+,-./:;<=>?@[\\]^_`{|}~", want: "!#$&'()*+,-./:;<=>?@[\\]^_`{|}~"},
		{name: "space, quote, percent", in: `a "b" 5%`, want: "a%20%22b%22%205%25"},
		// The binding's own example.
		{name: "non-ASCII", in: "Euro € 😀", want: "Euro%20%E2%82%AC%20%F0%9F%98%80"},
		{name: "controls", in: "a\tb\x7f", want: "a%09b%7F"},
		{name: "empty", in: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := escape(tc.in); got != tc.want {
				t.Fatalf("escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if n := escapedLen(tc.in); n != len(tc.want) {
				t.Fatalf("escapedLen(%q) = %d, want %d", tc.in, n, len(tc.want))
			}
			if got, err := DecodeHeaderValue(tc.want); err != nil || got != tc.in {
				t.Fatalf("DecodeHeaderValue(%q) = %q, %v; want %q", tc.want, got, err, tc.in)
			}
		})
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "plain", in: "charge.success", want: "charge.success"},
		{name: "lower-case hex", in: "caf%c3%a9", want: "café"},
		{name: "needlessly encoded", in: "%61%62", want: "ab"},
		{name: "one round only", in: "100%2525", want: "100%25"},
		{name: "quoted, as older senders wrote", in: `"a b \"c\" \\ d"`, want: `a b "c" \ d`},
		{name: "quoted and encoded", in: `"caf%C3%A9 ok"`, want: "café ok"},
		{name: "a lone quote is not quoting", in: `"`, want: `"`},
		{name: "percent at the end", in: "abc%", wantErr: true},
		{name: "one hex digit", in: "abc%4", wantErr: true},
		{name: "not hex", in: "%zz", wantErr: true},
		// The binding: "%C0%A0 is an overlong encoding of U+0020, and MUST
		// be rejected".
		{name: "overlong UTF-8", in: "%C0%A0", wantErr: true},
		{name: "lone continuation byte", in: "a%80", wantErr: true},
		{name: "raw bytes that are not UTF-8", in: "a\xffb", wantErr: true},
		{name: "quoted string ending in a backslash", in: `"a\"`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeHeaderValue(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrHeaderValue) {
					t.Fatalf("DecodeHeaderValue(%q) = %q, %v; want an error wrapping ErrHeaderValue", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("DecodeHeaderValue(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = DecodeHeaderValue("charge.success") }); n != 0 {
		t.Errorf("DecodeHeaderValue allocates %v times for a value without escapes, want 0", n)
	}
}

// FuzzHeaderValue: every UTF-8 string survives encoding and decoding, the
// encoded form holds only what a NATS header line may (printable ASCII, no
// space or double quote), and no input makes DecodeHeaderValue panic or
// return something that is not UTF-8.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"", "checkout.success", `a "b" 5%`, "Euro € 😀", "a\r\nb", "%C0%A0", `"quoted \"x\""`, "%zz", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, err := DecodeHeaderValue(s); err == nil && !utf8.ValidString(got) {
			t.Fatalf("DecodeHeaderValue(%q) = %q: not UTF-8", s, got)
		}
		if !utf8.ValidString(s) {
			return
		}
		e := escape(s)
		if strings.ContainsFunc(e, func(r rune) bool { return r <= ' ' || r == '"' || r > '~' }) {
			t.Fatalf("escape(%q) = %q: holds what a header line may not", s, e)
		}
		if got, err := DecodeHeaderValue(e); err != nil || got != s {
			t.Fatalf("DecodeHeaderValue(escape(%q)) = %q, %v", s, got, err)
		}
	})
}
