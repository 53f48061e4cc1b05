package natssink

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// Header names of a published message (CloudEvents NATS binding, plus the
// JetStream deduplication id). The binding maps every attribute to
// ce-<name>, datacontenttype included; content-type carries it too, for the
// readers that looked there before ce-datacontenttype was sent.
const (
	HeaderSpecVersion      = "ce-specversion"
	HeaderID               = "ce-id"
	HeaderType             = "ce-type"
	HeaderSource           = "ce-source"
	HeaderTime             = "ce-time"
	HeaderDataContentType  = "ce-datacontenttype"
	HeaderContentType      = "content-type"
	HeaderMsgID            = "Nats-Msg-Id"
	HeaderDeadLetterReason = "ce-deadletterreason"
	HeaderDeadLetterDetail = "ce-deadletterdetail"
	// HeaderTraceParent and HeaderTraceState carry the W3C trace context
	// (sinks.Message.TraceParent, TraceState) as W3C propagators and the
	// CloudEvents distributed tracing extension name them: no ce- prefix,
	// and, as trace context is printable ASCII, never percent-encoded.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// Fixed header values. ContentType is a routed event's; a dead letter whose
// body is not JSON has sinks.ContentTypeOctetStream.
const (
	SpecVersion = "1.0"
	ContentType = sinks.ContentTypeJSON
)

// encode returns a new NATS message for msg. Every publish gets its own
// message and header map: nothing is shared between events, so no header
// of one can leak into the next.
//
// String attributes are percent-encoded as the NATS binding requires (see
// headervalue.go); a value that needs no encoding is used as it is. The
// encoded ones are written, after ce-time, into one buffer that becomes one
// string the headers slice, so that a dead letter's type and detail cost no
// allocation of their own (a string each would add one per encoded value)
// and a routed event pays for ce-time alone, as when it was formatted by
// itself (TestEncodeAllocations).
func encode(msg *sinks.Message) *nats.Msg {
	// One array backs every header value: one allocation instead of one a
	// header (measured: 28 to 21 allocations a core publish).
	v := [...]string{SpecVersion, msg.ID, msg.Type, sinks.Source, "",
		msg.DataContentType(), msg.DeadLetterReason, msg.DeadLetterDetail,
		msg.TraceParent, msg.TraceState}
	const stampAt = 4
	// The trace context is W3C's printable ASCII (the bridge checks it) and
	// goes out as it is: percent-encoding would change what a W3C
	// propagator reads.
	const encodable = 8
	var stampBuf [len(time.RFC3339Nano)]byte
	stamp := msg.Time.UTC().AppendFormat(stampBuf[:0], time.RFC3339Nano)
	var encodedLen [encodable]int // 0: used as it is
	size := len(stamp)
	for i, s := range v[:encodable] {
		if n := escapedLen(s); n != len(s) {
			encodedLen[i] = n
			size += n
		}
	}
	var b strings.Builder
	b.Grow(size)
	b.Write(stamp)
	for i, n := range encodedLen {
		if n != 0 {
			writeEscaped(&b, v[i])
		}
	}
	all := b.String()
	v[stampAt], all = all[:len(stamp)], all[len(stamp):]
	for i, n := range encodedLen {
		if n != 0 {
			v[i], all = all[:n], all[n:]
		}
	}

	// Sized to what it holds: up to eight entries (a routed event's eight
	// headers) a map is one group of slots, a ninth makes it a table
	// (measured: makemap was 1.3 % of the core path's CPU with a hint of 9
	// for what were then seven headers).
	size = 8
	if msg.DeadLetterReason != "" {
		size++
	}
	if msg.DeadLetterDetail != "" {
		size++
	}
	if msg.TraceParent != "" {
		size++
	}
	if msg.TraceState != "" {
		size++
	}
	h := make(nats.Header, size)
	h[HeaderSpecVersion] = v[0:1:1]
	h[HeaderID] = v[1:2:2]
	h[HeaderType] = v[2:3:3]
	h[HeaderSource] = v[3:4:4]
	h[HeaderTime] = v[4:5:5]
	h[HeaderDataContentType] = v[5:6:6]
	h[HeaderContentType] = v[5:6:6]
	// Set here rather than through jetstream.WithMsgID: the same header,
	// and core mode carries it too.
	h[HeaderMsgID] = v[1:2:2]
	if msg.DeadLetterReason != "" {
		h[HeaderDeadLetterReason] = v[6:7:7]
	}
	if msg.DeadLetterDetail != "" {
		h[HeaderDeadLetterDetail] = v[7:8:8]
	}
	if msg.TraceParent != "" {
		h[HeaderTraceParent] = v[8:9:9]
	}
	if msg.TraceState != "" {
		h[HeaderTraceState] = v[9:10:10]
	}
	return &nats.Msg{Subject: msg.Subject, Header: h, Data: msg.Body}
}

// Decode turns a message that a Sink published back into a sinks.Message
// (Key, which NATS does not carry, is left empty), percent-decoding the
// attributes as DecodeHeaderValue does; ContentType is ce-datacontenttype,
// or content-type without it; TraceParent and TraceState are the trace
// headers as they are. Consumers and tests use it; it fails when ce-time
// is not RFC 3339, or with an error wrapping ErrHeaderValue.
func Decode(m *nats.Msg) (sinks.Message, error) {
	out := sinks.Message{Subject: m.Subject, Body: m.Data,
		TraceParent: m.Header.Get(HeaderTraceParent), TraceState: m.Header.Get(HeaderTraceState)}
	contentType := m.Header.Get(HeaderDataContentType)
	if contentType == "" {
		contentType = m.Header.Get(HeaderContentType)
	}
	for _, f := range []struct {
		header, value string
		field         *string
	}{
		{HeaderID, m.Header.Get(HeaderID), &out.ID},
		{HeaderType, m.Header.Get(HeaderType), &out.Type},
		{HeaderDataContentType, contentType, &out.ContentType},
		{HeaderDeadLetterReason, m.Header.Get(HeaderDeadLetterReason), &out.DeadLetterReason},
		{HeaderDeadLetterDetail, m.Header.Get(HeaderDeadLetterDetail), &out.DeadLetterDetail},
	} {
		v, err := DecodeHeaderValue(f.value)
		if err != nil {
			return out, fmt.Errorf("natssink: decode %s: %s: %w", m.Subject, f.header, err)
		}
		*f.field = v
	}
	t, err := time.Parse(time.RFC3339Nano, m.Header.Get(HeaderTime))
	if err != nil {
		return out, fmt.Errorf("natssink: decode %s: ce-time: %w", m.Subject, err)
	}
	out.Time = t
	return out, nil
}
