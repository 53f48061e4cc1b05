// Package webhook verifies and decodes Senfenico webhook notifications.
//
// Senfenico signs a notification with X-Webhook-Hash, the hex SHA-256 of
// payload+key (a plain hash with the key appended, not an HMAC). Its two
// official SDKs disagree on the payload: the PHP SDK hashes the raw body, the
// Python SDK hashes json.dumps(json.loads(body)). A Decoder accepts a body when
// either rule matches for any configured key, and nothing else.
//
// The document the Python rule re-encodes is the document the envelope is read
// from (package pyjson): no second parser can read the body differently from
// the one that verified it.
package webhook

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"sync"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
)

// HeaderName is the HTTP header that carries the signature.
const HeaderName = "X-Webhook-Hash"

// Errors Decode returns; test them with errors.Is.
var (
	// ErrMissingSignature: the request has no X-Webhook-Hash, or an empty one.
	ErrMissingSignature = errors.New("webhook: missing signature")
	// ErrBadSignature: the signature matches no key under either SDK's rule.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrMalformed: the body is authentic but not a JSON object with a
	// string "event".
	ErrMalformed = errors.New("webhook: body is not a JSON object with a string event")
	// ErrNoKeys: NewDecoder was given no usable key.
	ErrNoKeys = errors.New("webhook: no signing key")
)

// Rule names the signature rule that accepted a notification.
type Rule uint8

const (
	// RuleRawBody is the PHP SDK's rule: sha256(raw body + key).
	RuleRawBody Rule = iota + 1
	// RulePythonJSON is the Python SDK's rule: sha256(json.dumps(json.loads(body)) + key).
	RulePythonJSON
)

// String returns the rule's name as used in logs and metrics.
func (r Rule) String() string {
	switch r {
	case RuleRawBody:
		return "raw_body"
	case RulePythonJSON:
		return "python_json"
	}
	return "none"
}

// Notification is a verified notification, decoded.
type Notification struct {
	// ID identifies the notification by the document it holds, not by its
	// bytes: DocumentID of json.dumps(json.loads(body)). Every byte form of
	// one document (white space, a BOM, escapes, repeated keys, number
	// spellings), under either rule, gets the same ID, so a replayed
	// variant of a captured delivery is a duplicate; two different
	// documents get different IDs.
	ID string
	// Event is the "event" string, decoded. When it holds a lone surrogate
	// (not representable in UTF-8) it is the string as json.dumps writes it,
	// without the quotes (non-ASCII escaped as \uXXXX), and EventValid is
	// false.
	Event string
	// EventValid reports that Event is exactly the decoded string.
	EventValid bool
	// Data is the "data" document written as json.dumps writes it: the
	// value itself, or the document in the JSON string Senfenico wraps it
	// in, parsed and re-serialised. Re-serialising, rather than passing on
	// the bytes as sent, leaves nothing that another parser could read
	// differently from the one that verified it (a repeated key keeps its
	// first position and last value, as CPython reads it) and gives every
	// byte form of one document the same Data. Senfenico writes its data
	// with json.dumps, so its own bodies come out byte for byte as sent. It
	// is nil when the data cannot be republished as standard JSON; Problem
	// says why.
	Data []byte
	// Reference is data.reference when it is a string, else empty.
	Reference string
	// Problem is empty when Data is publishable, else a short printable
	// reason that never quotes the payload.
	Problem string
	// Rule is the signature rule that accepted the notification.
	Rule Rule
}

// Decoder verifies and decodes notifications. It is safe for concurrent use.
type Decoder struct {
	keys    [][]byte
	scratch sync.Pool // *scratch
}

// scratch is per-request working memory, pooled so that the common path does
// not allocate a parse tree per request.
//
// Only a scratch that served a body of at most maxPooledBody goes back to
// the pool. Its buffers grow to fit the largest body they parsed, up to 20
// times that body's size (measured: an unsigned 1 MiB array of zeros left
// 21 MiB in the pool after a GC), and a pool that keeps serving requests
// never lets them go: a burst of large junk bodies would keep the heap high
// long after its connections closed.
type scratch struct {
	doc   pyjson.Document
	inner pyjson.Document
	// innerText is the decoded "data" string that inner was parsed from.
	innerText []byte
	canon     []byte
	str       []byte
}

// maxPooledBody is the largest body whose scratch is pooled: eight times a
// Senfenico notification (under a kilobyte), so that every genuine one
// reuses a scratch.
const maxPooledBody = 8 << 10

// NewDecoder returns a Decoder that accepts signatures made with any of keys
// (several keys let a key be rotated without a gap). Surrounding white space
// is trimmed; empty keys are an error, as is an empty list.
func NewDecoder(keys []string) (*Decoder, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	d := &Decoder{}
	for i, k := range keys {
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, fmt.Errorf("%w: key %d of %d is empty", ErrNoKeys, i+1, len(keys))
		}
		d.keys = append(d.keys, []byte(k))
	}
	d.scratch.New = func() any { return new(scratch) }
	return d, nil
}

// LogValue keeps the keys out of logs: only their number is shown.
func (d *Decoder) LogValue() slog.Value {
	return slog.StringValue(d.String())
}

// String describes the Decoder without revealing its keys.
func (d *Decoder) String() string {
	return fmt.Sprintf("webhook.Decoder{keys: %d, redacted}", len(d.keys))
}

// Sign returns the X-Webhook-Hash Senfenico would send for body under key:
// the lowercase hex SHA-256 of body followed by key.
func Sign(body []byte, key string) string {
	h := sha256.New()
	h.Write(body)
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil))
}

// Decode verifies signature (the X-Webhook-Hash value) against body and
// decodes the envelope. It returns ErrMissingSignature, ErrBadSignature or
// ErrMalformed (wrapped, with a reason that never quotes the body).
func (d *Decoder) Decode(body []byte, signature string) (Notification, error) {
	if err := CheckSignatureForm(signature); err != nil {
		return Notification{}, err
	}
	var want [sha256.Size]byte
	hex.Decode(want[:], []byte(signature))

	s := d.scratch.Get().(*scratch)
	if len(body) <= maxPooledBody {
		defer d.scratch.Put(s)
	}

	// The raw-body rule costs one hash and no parse, so it goes first: a
	// body signed that way (or not signed at all) is settled before any
	// parsing. The digest state after the body is cloned once per key.
	h := sha256.New()
	h.Write(body)
	var n Notification
	// hashedCanonical: h holds the state after the document's json.dumps
	// form, which the ID is the hash of.
	var hashedCanonical bool
	if d.matchAny(h, want[:]) {
		n.Rule = RuleRawBody
		if err := pyjson.ParseInto(&s.doc, body); err != nil {
			return Notification{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		// Senfenico writes its bodies with json.dumps: then the body is its
		// own canonical form and was hashed already.
		hashedCanonical = s.doc.Canonical()
	} else {
		// The Python rule needs the document; a body it cannot parse cannot
		// match that rule either, so the signature is wrong.
		if err := pyjson.ParseInto(&s.doc, body); err != nil {
			return Notification{}, ErrBadSignature
		}
		s.canon = s.doc.AppendPython(s.canon[:0])
		h.Reset()
		h.Write(s.canon)
		if !d.matchAny(h, want[:]) {
			return Notification{}, ErrBadSignature
		}
		n.Rule = RulePythonJSON
		hashedCanonical = true
	}
	if hashedCanonical {
		var sum [sha256.Size]byte
		n.ID = idOf(h.Sum(sum[:0]))
	} else {
		s.canon = s.doc.AppendPython(s.canon[:0])
		n.ID = DocumentID(s.canon)
	}
	if err := s.readEnvelope(&n); err != nil {
		return Notification{}, err
	}
	return n, nil
}

// DocumentID returns the ID of the document whose json.dumps form is
// canonical: the first 128 bits of its SHA-256, in lowercase hex.
func DocumentID(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return idOf(sum[:])
}

// idOf is the ID of a document whose canonical form hashes to sum.
func idOf(sum []byte) string {
	return hex.EncodeToString(sum[:16])
}

// CheckSignatureForm returns ErrMissingSignature for an empty X-Webhook-Hash
// and ErrBadSignature for one that is not a hex SHA-256 digest (which no
// body can match), so that a caller can refuse before reading the body.
func CheckSignatureForm(signature string) error {
	if signature == "" {
		return ErrMissingSignature
	}
	if len(signature) != hex.EncodedLen(sha256.Size) {
		return ErrBadSignature
	}
	for i := 0; i < len(signature); i++ {
		if c := signature[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return ErrBadSignature
		}
	}
	return nil
}

// matchAny reports whether sha256(prefix+key) equals want for some key,
// where h holds the state after prefix. Comparisons are constant-time.
func (d *Decoder) matchAny(h hash.Hash, want []byte) bool {
	var sum [sha256.Size]byte
	for _, key := range d.keys {
		c, err := h.(hash.Cloner).Clone()
		if err != nil {
			// Every standard-library hash clones; this guards a FIPS build.
			panic(fmt.Sprintf("webhook: sha256 state cannot be cloned: %v", err))
		}
		c.Write(key)
		if subtle.ConstantTimeCompare(c.Sum(sum[:0]), want) == 1 {
			return true
		}
	}
	return false
}

// readEnvelope fills n from s.doc, which holds the parsed body.
func (s *scratch) readEnvelope(n *Notification) error {
	root := s.doc.Root()
	if root.Kind() != pyjson.KindObject {
		return fmt.Errorf("%w: top level is not an object", ErrMalformed)
	}
	ev, ok := root.Lookup("event")
	if !ok || ev.Kind() != pyjson.KindString {
		return fmt.Errorf("%w: no string \"event\"", ErrMalformed)
	}
	var valid bool
	s.str, valid = ev.AppendStr(s.str[:0])
	if valid {
		n.Event, n.EventValid = string(s.str), true
	} else {
		// Written as json.dumps writes it, so that every byte form of the
		// name (raw surrogate bytes or escapes) reads the same.
		dumped := ev.AppendPython(s.str[:0])
		n.Event = string(dumped[1 : len(dumped)-1])
	}

	data, ok := root.Lookup("data")
	if !ok {
		n.Problem = "no \"data\" member"
		return nil
	}
	// dataCanonical: data's bytes are already its json.dumps form, as when
	// Senfenico wrote them, and Data is their copy.
	dataCanonical := s.doc.Canonical()
	if data.Kind() == pyjson.KindString {
		// What Senfenico really sends: the object serialised into a string.
		var ok bool
		s.innerText, ok = data.AppendStr(s.innerText[:0])
		if !ok {
			n.Problem = "\"data\" string holds a lone surrogate"
			return nil
		}
		if err := pyjson.ParseInto(&s.inner, s.innerText); err != nil {
			n.Problem = "\"data\" string is not JSON"
			return nil
		}
		data = s.inner.Root()
		dataCanonical = s.inner.Canonical()
	}
	if !data.Standard() {
		n.Problem = "\"data\" is not standard JSON (NaN, Infinity or a number beyond a float)"
		return nil
	}
	if dataCanonical {
		n.Data = bytes.Clone(data.Raw())
	} else {
		// Escapes can make the dump longer than the source; the source
		// length is the usual size.
		n.Data = data.AppendPython(make([]byte, 0, len(data.Raw())+16))
	}
	if ref, ok := data.Lookup("reference"); ok && ref.Kind() == pyjson.KindString {
		if b, ok := ref.AppendStr(s.str[:0]); ok {
			s.str = b
			n.Reference = string(b)
		}
	}
	return nil
}
