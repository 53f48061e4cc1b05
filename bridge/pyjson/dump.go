package pyjson

import (
	"math"
	"strconv"
)

// AppendPython appends json.dumps of this value with CPython's defaults (see
// Document.AppendPython) to dst. For the zero Value, dst is returned unchanged.
func (v Value) AppendPython(dst []byte) []byte {
	if v.node() == nil {
		return dst
	}
	return v.d.appendValue(dst, v.i)
}

func (d *Document) appendValue(dst []byte, i int32) []byte {
	n := &d.nodes[i]
	raw := d.body[n.start:n.end]
	switch n.kind {
	case KindString:
		return appendPyString(dst, raw[1:len(raw)-1])
	case KindInt:
		if len(raw) == 2 && raw[0] == '-' && raw[1] == '0' {
			return append(dst, '0')
		}
		return append(dst, raw...)
	case KindFloat:
		if raw[0] == 'N' || raw[0] == 'I' || raw[len(raw)-1] == 'y' {
			return append(dst, raw...) // NaN, Infinity, -Infinity
		}
		return appendRepr(dst, parseFloat(raw))
	case KindArray:
		dst = append(dst, '[')
		for c := i + 1; c < n.next; c = d.nodes[c].next {
			if c != i+1 {
				dst = append(dst, ", "...)
			}
			dst = d.appendValue(dst, c)
		}
		return append(dst, ']')
	case KindObject:
		dst = append(dst, '{')
		first := true
		for k := i + 1; k < n.next; k = d.nodes[k+1].next {
			key := &d.nodes[k]
			if key.flags&flagShadowed != 0 {
				continue
			}
			if !first {
				dst = append(dst, ", "...)
			}
			first = false
			dst = appendPyString(dst, d.body[key.start+1:key.end-1])
			dst = append(dst, ": "...)
			dst = d.appendValue(dst, key.val)
		}
		return append(dst, '}')
	}
	return append(dst, raw...) // null, true, false
}

// appendRepr appends Python's repr of a finite or infinite float: the
// shortest digits that round-trip, fixed notation while the decimal exponent
// is in [-4, 16), else Go's 'e' format, which is Python's (signed exponent of
// at least two digits).
func appendRepr(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	}
	var tmp [32]byte
	s := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64)
	e := len(s) - 1
	for s[e] != 'e' {
		e--
	}
	exp := 0
	for _, c := range s[e+2:] {
		exp = exp*10 + int(c-'0')
	}
	if s[e+1] == '-' {
		exp = -exp
	}
	if exp < -4 || exp >= 16 {
		return append(dst, s...)
	}
	mant := s[:e]
	if mant[0] == '-' {
		dst = append(dst, '-')
		mant = mant[1:]
	}
	var digits [20]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	if exp < 0 {
		dst = append(dst, "0."...)
		for z := -exp - 1; z > 0; z-- {
			dst = append(dst, '0')
		}
		return append(dst, digits[:nd]...)
	}
	if nd <= exp+1 {
		dst = append(dst, digits[:nd]...)
		for z := exp + 1 - nd; z > 0; z-- {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	}
	dst = append(dst, digits[:exp+1]...)
	dst = append(dst, '.')
	return append(dst, digits[exp+1:nd]...)
}

const hexLower = "0123456789abcdef"

// pySafe marks the bytes that ensure_ascii copies as they are.
var pySafe = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendPyString appends the string literal whose validated inside is s the
// way json.dumps writes the decoded str with ensure_ascii. Every code point
// is written on its own, so an escaped surrogate pair comes out as the same
// pair and a lone surrogate as itself, whether it was escaped or raw.
func appendPyString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		// Copy in one append the run of bytes that json.dumps writes as
		// they are: safe bytes and the two-byte escapes it writes the same
		// way (all but \u and \/). Senfenico's data string is a whole
		// JSON document with a \" every few bytes; taken one escape at a
		// time, they made this function a quarter of Decode's time.
		j := i
		for j < len(s) {
			if pySafe[s[j]] {
				j++
			} else if s[j] == '\\' && s[j+1] != 'u' && s[j+1] != '/' {
				j += 2
			} else {
				break
			}
		}
		if j > i {
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		c := s[i]
		var r rune
		switch {
		case c == '\\' && s[i+1] == 'u':
			r, _ = hex4(s, i+2)
			i += 6
		case c == '\\': // \/, the only other escape the run above stops at
			r = '/'
			i += 2
		case c < 0x80:
			r = rune(c)
			i++
		default:
			var size int
			r, size = decodeRune(s[i:])
			i += size
		}
		dst = appendEscapedRune(dst, r)
	}
	return append(dst, '"')
}

func appendEscapedRune(dst []byte, r rune) []byte {
	switch r {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if r >= 0x20 && r < 0x7f {
		return append(dst, byte(r))
	}
	if r >= 0x10000 {
		r -= 0x10000
		dst = appendU(dst, 0xd800|(r>>10)&0x3ff)
		return appendU(dst, 0xdc00|r&0x3ff)
	}
	return appendU(dst, r)
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexLower[r>>12&0xf], hexLower[r>>8&0xf], hexLower[r>>4&0xf], hexLower[r&0xf])
}
