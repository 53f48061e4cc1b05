// Package pyjson parses JSON exactly as CPython 3.11's json.loads(bytes) does
// and writes it back exactly as json.dumps does with its defaults.
//
// Senfenico's Python SDK accepts a webhook when
// sha256(json.dumps(json.loads(body)) + key) equals the X-Webhook-Hash header,
// so the bridge must reproduce that text byte for byte. The same parse also
// serves to read the envelope that gets routed: the object the bridge routes
// is the object it verified, read by one parser only.
//
// What Parse accepts is what json.loads(bytes) accepts, with three deliberate
// restrictions, each reported by its own sentinel error:
//   - UTF-16 and UTF-32 bodies (which json.loads detects by BOM or by the NUL
//     bytes in the first four bytes) are refused with ErrUnsupportedEncoding;
//     Senfenico sends UTF-8. The UTF-8 BOM is skipped, as json.loads(bytes) does.
//   - Nesting deeper than MaxDepth is refused with ErrDepth (CPython goes on
//     until its recursion limit, near 1000 levels).
//   - Bodies of 2 GiB or more are refused with ErrTooLarge.
//
// Everything else follows CPython: NaN, Infinity and -Infinity literals,
// integers of any length up to CPython's 4300-digit limit, UTF-8-encoded
// surrogates (decoded with 'surrogatepass'), duplicate keys (first position,
// last value), strict strings (no raw control characters).
package pyjson

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
)

// MaxDepth is the deepest nesting of arrays and objects Parse accepts; it is
// also the default depth of PHP's json_decode, the other SDK's parser.
const MaxDepth = 512

// MaxIntDigits is CPython's default limit on the digits of an integer that
// int() converts from text (sys.get_int_max_str_digits()); json.loads raises
// ValueError for longer integers.
const MaxIntDigits = 4300

// Errors returned by Parse and ParseInto, always wrapped in a *SyntaxError;
// test them with errors.Is.
var (
	// ErrSyntax means the body is not JSON that json.loads accepts.
	ErrSyntax = errors.New("pyjson: syntax error")
	// ErrEncoding means the body is not valid UTF-8 (UTF-8-encoded surrogates
	// are valid here, as with Python's 'surrogatepass').
	ErrEncoding = errors.New("pyjson: invalid UTF-8")
	// ErrUnsupportedEncoding means json.loads would decode the body as UTF-16
	// or UTF-32; this package only reads UTF-8.
	ErrUnsupportedEncoding = errors.New("pyjson: UTF-16 and UTF-32 bodies are not supported")
	// ErrDepth means arrays and objects nest deeper than MaxDepth.
	ErrDepth = errors.New("pyjson: nesting deeper than MaxDepth")
	// ErrIntTooLong means an integer has more than MaxIntDigits digits.
	ErrIntTooLong = errors.New("pyjson: integer longer than 4300 digits")
	// ErrTooLarge means the body is 2 GiB or larger.
	ErrTooLarge = errors.New("pyjson: body too large")
)

// SyntaxError is the error Parse returns: why the body was refused and where.
type SyntaxError struct {
	// Offset is the byte offset in the body where the problem was found.
	Offset int
	// Msg describes the problem, in words close to CPython's.
	Msg string
	// Err is one of the package's sentinel errors.
	Err error
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d", e.Err, e.Msg, e.Offset)
}

// Unwrap returns the sentinel error, for errors.Is.
func (e *SyntaxError) Unwrap() error { return e.Err }

// Kind is the type of a JSON value.
type Kind uint8

// Kinds of values. KindInvalid is the Kind of the zero Value (a missing member,
// an index out of range, the root of a Document that holds nothing).
const (
	KindInvalid Kind = iota
	KindNull
	KindBool
	KindInt    // an integer: no fraction, no exponent; any number of digits
	KindFloat  // a number with a fraction or an exponent, or NaN, Infinity, -Infinity
	KindString // a string, or an object key
	KindArray
	KindObject
)

var kindNames = [...]string{"invalid", "null", "bool", "int", "float", "string", "array", "object"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

const (
	// flagEscaped: the raw string holds a backslash.
	flagEscaped uint8 = 1 << iota
	// flagSurrogate: the decoded string holds a surrogate code point that is
	// not part of a pair (from a raw encoded surrogate or an unpaired escape).
	flagSurrogate
	// flagNonStandard: the document the subtree reads as holds a NaN or
	// Infinity literal or a number that overflows a float (dumped as
	// Infinity). Values a repeated key replaced do not count.
	flagNonStandard
	// flagShadowed: an object key that repeats an earlier key of the same
	// object; the earlier key takes this member's value.
	flagShadowed
)

// node is one value. A container's children follow it in Document.nodes;
// an object's children alternate key, value.
type node struct {
	kind  Kind
	flags uint8
	start int32 // raw span in the body
	end   int32
	next  int32 // index just past this node's subtree: its next sibling
	count int32 // containers: elements, or distinct object members
	val   int32 // object keys: index of the value in effect (the last one)
	// Canonical bytes of a key holding escapes, in Document.buf. Keys without
	// escapes are compared on their raw bytes.
	bufStart, bufEnd int32
}

// Document is a parsed body: every value in one flat slice, so a parse costs
// a few allocations, and none when a Document is reused with ParseInto.
//
// A Document refers to the body it was parsed from: the body must not change
// while the Document or its Values are in use. Reading a Document (Root and
// every Value method, AppendPython) is safe from several goroutines at once;
// ParseInto is not safe concurrently with anything else on the same Document.
type Document struct {
	body   []byte
	nodes  []node
	buf    []byte  // canonical bytes of keys that hold escapes
	table  []int32 // open-addressing table for duplicate keys in large objects
	seed   maphash.Seed
	seeded bool
	depth  int
	// notCanonical: the body differs from its json.dumps form somewhere.
	notCanonical bool

	strOnce sync.Once
	strBody string // string(body), made on the first Str call
}

// Parse parses body as CPython's json.loads(bytes) does and returns the
// document. It returns a *SyntaxError wrapping ErrSyntax, ErrEncoding,
// ErrUnsupportedEncoding, ErrDepth, ErrIntTooLong or ErrTooLarge for every
// body json.loads rejects, and for the restrictions listed in the package doc.
// The Document keeps a reference to body.
func Parse(body []byte) (*Document, error) {
	d := new(Document)
	if err := ParseInto(d, body); err != nil {
		return nil, err
	}
	return d, nil
}

// ParseInto is Parse that reuses d's storage, for pooling on the hot path: once
// d has grown to the size of the bodies it sees, it allocates nothing. On
// error d holds nothing (its Root is the zero Value). Values from an earlier
// parse into d are invalid afterwards.
func ParseInto(d *Document, body []byte) error {
	d.body = body
	d.nodes = d.nodes[:0]
	d.buf = d.buf[:0]
	d.depth = 0
	d.notCanonical = false
	d.strOnce = sync.Once{}
	d.strBody = ""
	if err := d.parse(); err != nil {
		d.nodes = d.nodes[:0]
		return err
	}
	return nil
}

// Root returns the top-level value, or the zero Value if d holds nothing.
func (d *Document) Root() Value {
	if d == nil || len(d.nodes) == 0 {
		return Value{}
	}
	return Value{d: d, i: 0}
}

// Canonical reports whether the body is already json.dumps(json.loads(body))
// byte for byte, so that AppendPython would only copy it: as Senfenico
// writes its bodies and the JSON string in "data". The parse notes it from
// the bytes it reads anyway (about 0.1 µs on a notification's data), where
// writing the dump costs more than the parse: with it, the webhook decoder
// skips both dumps of a Senfenico notification (BenchmarkDecode
// raw_body_rule 4.9 → 3.6 µs, 2026-12-02). FuzzParse and the CPython
// oracle test check it against the dump. False for a Document that holds
// nothing.
func (d *Document) Canonical() bool {
	return len(d.nodes) > 0 && !d.notCanonical
}

// AppendPython appends json.dumps(json.loads(body)) with CPython's defaults
// (ensure_ascii, separators ", " and ": ", keys in order of first appearance
// with their last value, repr of floats, NaN/Infinity/-Infinity) to dst and
// returns the extended slice. If d holds nothing, dst is returned unchanged.
func (d *Document) AppendPython(dst []byte) []byte {
	return d.Root().AppendPython(dst)
}
