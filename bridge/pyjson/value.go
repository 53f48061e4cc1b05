package pyjson

import (
	"iter"
	"math"
	"strconv"
	"unicode/utf8"
)

// Value is one value of a Document: a small handle, cheap to copy. The zero
// Value has KindInvalid and every accessor reports it as absent. A Value is
// valid until its Document is parsed into again.
type Value struct {
	d *Document
	i int32
}

func (v Value) node() *node {
	if v.d == nil || int(v.i) >= len(v.d.nodes) {
		return nil
	}
	return &v.d.nodes[v.i]
}

// Kind returns the value's kind; KindInvalid for the zero Value.
func (v Value) Kind() Kind {
	if n := v.node(); n != nil {
		return n.kind
	}
	return KindInvalid
}

// Raw returns the exact source bytes of the value: a subslice of the body,
// not a copy (nil for the zero Value). For a string it includes the quotes.
func (v Value) Raw() []byte {
	n := v.node()
	if n == nil {
		return nil
	}
	return v.d.body[n.start:n.end:n.end]
}

// Standard reports whether AppendPython writes this subtree as standard RFC
// 8259 JSON: the document it reads as (the last value of a repeated key, as
// CPython keeps it) holds no NaN, Infinity or -Infinity literal and no number
// too large for a float (CPython reads 1e400 as inf and dumps it as
// Infinity). It depends on the document, not on its bytes: a lone surrogate
// is standard whether sent raw (UTF-8-encoded, which json.loads accepts with
// 'surrogatepass') or as an escape, since AppendPython writes both as the
// escape \udXXXX.
func (v Value) Standard() bool {
	n := v.node()
	return n != nil && n.flags&flagNonStandard == 0
}

// Bool returns the value of a true or false literal; ok is false for any
// other kind.
func (v Value) Bool() (b, ok bool) {
	n := v.node()
	if n == nil || n.kind != KindBool {
		return false, false
	}
	return v.d.body[n.start] == 't', true
}

// Int64 returns an integer's value; ok is false for other kinds and for
// integers outside the int64 range.
func (v Value) Int64() (int64, bool) {
	n := v.node()
	if n == nil || n.kind != KindInt {
		return 0, false
	}
	i, err := strconv.ParseInt(string(v.d.body[n.start:n.end]), 10, 64)
	return i, err == nil
}

// Float64 returns the value of a number as Python's float() would (huge
// values become ±Inf, NaN for the NaN literal); ok is false for other kinds.
func (v Value) Float64() (float64, bool) {
	n := v.node()
	if n == nil || (n.kind != KindInt && n.kind != KindFloat) {
		return 0, false
	}
	return parseFloat(v.d.body[n.start:n.end]), true
}

func parseFloat(raw []byte) float64 {
	switch string(raw) {
	case "NaN":
		return math.NaN()
	case "Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	// The text matched the JSON number grammar, which ParseFloat accepts;
	// its only possible error is ErrRange, whose ±Inf or 0 is Python's answer.
	f, _ := strconv.ParseFloat(string(raw), 64)
	return f
}

// NumberText returns a number's source text (what encoding/json's Number
// holds), as a substring of the Document's one string copy of the body, so it
// costs no allocation after the first Str or NumberText call. ok is false for
// other kinds and for the NaN and Infinity literals, which are not JSON
// numbers.
func (v Value) NumberText() (string, bool) {
	n := v.node()
	if n == nil || (n.kind != KindInt && n.kind != KindFloat) {
		return "", false
	}
	d := v.d
	if first := d.body[n.start]; first == 'N' || first == 'I' || first == '-' && d.body[n.start+1] == 'I' {
		return "", false
	}
	d.strOnce.Do(d.makeStrBody)
	return d.strBody[n.start:n.end], true
}

// Str returns a string's decoded value. ok is false if the value is not a
// string, or if it holds a lone surrogate, which a Go string cannot carry as
// text (use Raw to see it). The first call on a Document copies the body
// into one string; after that, strings without escapes cost no allocation.
func (v Value) Str() (s string, ok bool) {
	n := v.node()
	if n == nil || n.kind != KindString || n.flags&flagSurrogate != 0 {
		return "", false
	}
	if n.flags&flagEscaped != 0 {
		return string(appendDecoded(nil, v.d.body[n.start+1:n.end-1])), true
	}
	d := v.d
	d.strOnce.Do(d.makeStrBody)
	return d.strBody[n.start+1 : n.end-1], true
}

func (d *Document) makeStrBody() { d.strBody = string(d.body) }

// AppendStr appends a string's decoded value in UTF-8 to dst. ok is false,
// and dst is returned unchanged, if the value is not a string or holds a
// lone surrogate (not representable in UTF-8).
func (v Value) AppendStr(dst []byte) ([]byte, bool) {
	n := v.node()
	if n == nil || n.kind != KindString || n.flags&flagSurrogate != 0 {
		return dst, false
	}
	return appendDecoded(dst, v.d.body[n.start+1:n.end-1]), true
}

// Len returns the number of elements of an array or of distinct members of
// an object (repeated keys count once, as in the Python dict), else 0.
func (v Value) Len() int {
	n := v.node()
	if n == nil || (n.kind != KindArray && n.kind != KindObject) {
		return 0
	}
	return int(n.count)
}

// Index returns element i of an array, or the zero Value if v is not an
// array or i is out of range. It walks the elements: O(i).
func (v Value) Index(i int) Value {
	n := v.node()
	if n == nil || n.kind != KindArray || i < 0 || i >= int(n.count) {
		return Value{}
	}
	c := v.i + 1
	for ; i > 0; i-- {
		c = v.d.nodes[c].next
	}
	return Value{d: v.d, i: c}
}

// Elements iterates over an array's elements in order; nothing for other
// kinds.
func (v Value) Elements() iter.Seq[Value] {
	return func(yield func(Value) bool) {
		n := v.node()
		if n == nil || n.kind != KindArray {
			return
		}
		for c := v.i + 1; c < n.next; c = v.d.nodes[c].next {
			if !yield(Value{d: v.d, i: c}) {
				return
			}
		}
	}
}

// Members iterates over an object's members as the Python dict holds them:
// each distinct key once, at its first position, with its last value.
// Nothing for other kinds.
func (v Value) Members() iter.Seq2[Value, Value] {
	return func(yield func(key, val Value) bool) {
		n := v.node()
		if n == nil || n.kind != KindObject {
			return
		}
		nodes := v.d.nodes
		for k := v.i + 1; k < n.next; k = nodes[k+1].next {
			if nodes[k].flags&flagShadowed != 0 {
				continue
			}
			if !yield(Value{d: v.d, i: k}, Value{d: v.d, i: nodes[k].val}) {
				return
			}
		}
	}
}

// Lookup returns the value of an object's member named key, with Python dict
// semantics: the last value of a repeated key. Keys are compared after
// unescaping, code point by code point (a key holding a lone surrogate
// matches no valid UTF-8 Go string). ok is false if v is not an object or
// has no such member.
func (v Value) Lookup(key string) (Value, bool) {
	n := v.node()
	if n == nil || n.kind != KindObject || !utf8.ValidString(key) {
		return Value{}, false
	}
	d := v.d
	for k := v.i + 1; k < n.next; k = d.nodes[k+1].next {
		if d.nodes[k].flags&flagShadowed == 0 && string(d.keyBytes(k)) == key {
			return Value{d: d, i: d.nodes[k].val}, true
		}
	}
	return Value{}, false
}
