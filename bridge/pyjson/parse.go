package pyjson

import (
	"bytes"
	"hash/maphash"
	"math"
)

func (d *Document) fail(off int, sentinel error, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg, Err: sentinel}
}

func (d *Document) parse() error {
	b := d.body
	if len(b) >= math.MaxInt32 {
		return d.fail(0, ErrTooLarge, "body of 2 GiB or more")
	}
	// Mirrors json.detect_encoding: only its UTF-8 outcomes are supported.
	switch {
	case bytes.HasPrefix(b, []byte{0, 0, 0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe, 0, 0}),
		bytes.HasPrefix(b, []byte{0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe}):
		return d.fail(0, ErrUnsupportedEncoding, "UTF-16 or UTF-32 byte order mark")
	case bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf}):
	case len(b) >= 4 && (b[0] == 0 || b[1] == 0), len(b) == 2 && (b[0] == 0 || b[1] == 0):
		return d.fail(0, ErrUnsupportedEncoding, "NUL bytes of UTF-16 or UTF-32")
	}
	pos := 0
	if bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf}) {
		pos = 3
		d.notCanonical = true
	}
	pos = d.skipWSLaidOut(pos, 0)
	pos, _, err := d.value(pos)
	if err != nil {
		return err
	}
	pos = d.skipWSLaidOut(pos, 0)
	if pos != len(b) {
		return d.fail(pos, ErrSyntax, "extra data")
	}
	return nil
}

func skipWS(b []byte, pos int) int {
	for pos < len(b) {
		switch b[pos] {
		case ' ', '\t', '\n', '\r':
			pos++
		default:
			return pos
		}
	}
	return pos
}

// skipWSLaidOut is skipWS that also notes when the white space is not
// json.dumps's layout: one space after each ',' and ':' (spaces 1), none
// anywhere else (spaces 0).
func (d *Document) skipWSLaidOut(pos, spaces int) int {
	end := skipWS(d.body, pos)
	if end-pos != spaces || spaces == 1 && d.body[pos] != ' ' {
		d.notCanonical = true
	}
	return end
}

func (d *Document) push(n node) int32 {
	d.nodes = append(d.nodes, n)
	return int32(len(d.nodes) - 1)
}

// value parses the value at pos (no leading whitespace) and returns the
// position after it and its flags.
func (d *Document) value(pos int) (int, uint8, error) {
	b := d.body
	if pos >= len(b) {
		return pos, 0, d.fail(pos, ErrSyntax, "expecting value")
	}
	switch c := b[pos]; c {
	case '"':
		idx := d.push(node{kind: KindString, start: int32(pos)})
		end, flags, err := d.scanString(pos)
		if err != nil {
			return end, 0, err
		}
		n := &d.nodes[idx]
		n.end, n.next, n.flags = int32(end), idx+1, flags
		return end, flags, nil
	case '{':
		return d.object(pos)
	case '[':
		return d.array(pos)
	case 'n':
		return d.literal(pos, "null", KindNull, 0)
	case 't':
		return d.literal(pos, "true", KindBool, 0)
	case 'f':
		return d.literal(pos, "false", KindBool, 0)
	case 'N':
		return d.literal(pos, "NaN", KindFloat, flagNonStandard)
	case 'I':
		return d.literal(pos, "Infinity", KindFloat, flagNonStandard)
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return d.number(pos)
		}
		return pos, 0, d.fail(pos, ErrSyntax, "expecting value")
	}
}

func (d *Document) literal(pos int, lit string, k Kind, flags uint8) (int, uint8, error) {
	if !bytes.HasPrefix(d.body[pos:], []byte(lit)) {
		return pos, 0, d.fail(pos, ErrSyntax, "expecting value")
	}
	end := pos + len(lit)
	idx := int32(len(d.nodes))
	d.push(node{kind: k, flags: flags, start: int32(pos), end: int32(end), next: idx + 1})
	return end, flags, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number follows CPython's _match_number_unicode:
// -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?, where a '.' or 'e' that does not
// start a fraction or exponent is left for the caller, which then fails on it.
func (d *Document) number(pos int) (int, uint8, error) {
	b := d.body
	i := pos
	if b[i] == '-' {
		i++
		if i < len(b) && b[i] == 'I' {
			if !bytes.HasPrefix(b[i:], []byte("Infinity")) {
				return pos, 0, d.fail(pos, ErrSyntax, "expecting value")
			}
			return d.literal(pos, "-Infinity", KindFloat, flagNonStandard)
		}
	}
	digits := i
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return pos, 0, d.fail(pos, ErrSyntax, "expecting value")
	}
	k, hasExponent := KindInt, false
	if i+1 < len(b) && b[i] == '.' && isDigit(b[i+1]) {
		k = KindFloat
		i += 2
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		e := j
		for e < len(b) && isDigit(b[e]) {
			e++
		}
		if e > j {
			k, i, hasExponent = KindFloat, e, true
		}
	}
	if k == KindInt && i-digits > MaxIntDigits {
		return pos, 0, d.fail(pos, ErrIntTooLong, "integer string conversion exceeds the limit of 4300 digits")
	}
	if !d.notCanonical {
		d.notCanonical = !numberCanonical(k, b[pos:i])
	}
	var flags uint8
	if k == KindFloat && (hasExponent || i-digits > maxFixedFloatDigits) && math.IsInf(parseFloat(b[pos:i]), 0) {
		// json.loads reads 1e400 as inf, which json.dumps writes as Infinity:
		// text that goes out as something no standard parser reads.
		flags = flagNonStandard
	}
	idx := int32(len(d.nodes))
	d.push(node{kind: k, flags: flags, start: int32(pos), end: int32(i), next: idx + 1})
	return i, flags, nil
}

// numberCanonical reports whether json.dumps writes the number raw as it is:
// every integer but -0, and a float written as Python's repr writes it.
func numberCanonical(k Kind, raw []byte) bool {
	if k == KindInt {
		return string(raw) != "-0"
	}
	var tmp [32]byte
	return bytes.Equal(appendRepr(tmp[:0], parseFloat(raw)), raw)
}

// maxFixedFloatDigits: a float written without an exponent overflows
// float64 only with at least 309 integer digits (math.MaxFloat64 has 309),
// so a shorter one skips the conversion.
const maxFixedFloatDigits = 308

func (d *Document) array(pos int) (int, uint8, error) {
	if d.depth++; d.depth > MaxDepth {
		return pos, 0, d.fail(pos, ErrDepth, "nesting deeper than 512")
	}
	b := d.body
	idx := d.push(node{kind: KindArray, start: int32(pos)})
	var flags uint8
	count := int32(0)
	pos = d.skipWSLaidOut(pos+1, 0)
	if pos < len(b) && b[pos] == ']' {
		pos++
	} else {
		for {
			var f uint8
			var err error
			pos, f, err = d.value(pos)
			if err != nil {
				return pos, 0, err
			}
			flags |= f
			count++
			pos = d.skipWSLaidOut(pos, 0)
			if pos < len(b) && b[pos] == ']' {
				pos++
				break
			}
			if pos >= len(b) || b[pos] != ',' {
				return pos, 0, d.fail(pos, ErrSyntax, "expecting ',' delimiter")
			}
			pos = d.skipWSLaidOut(pos+1, 1)
		}
	}
	d.depth--
	flags &= flagNonStandard
	n := &d.nodes[idx]
	n.end, n.next, n.count, n.flags = int32(pos), int32(len(d.nodes)), count, flags
	return pos, flags, nil
}

func (d *Document) object(pos int) (int, uint8, error) {
	if d.depth++; d.depth > MaxDepth {
		return pos, 0, d.fail(pos, ErrDepth, "nesting deeper than 512")
	}
	b := d.body
	idx := d.push(node{kind: KindObject, start: int32(pos)})
	var flags uint8
	count := int32(0)
	pos = d.skipWSLaidOut(pos+1, 0)
	if pos < len(b) && b[pos] == '}' {
		pos++
	} else {
		for {
			if pos >= len(b) || b[pos] != '"' {
				return pos, 0, d.fail(pos, ErrSyntax, "expecting property name enclosed in double quotes")
			}
			k := d.push(node{kind: KindString, start: int32(pos)})
			end, f, err := d.scanString(pos)
			if err != nil {
				return end, 0, err
			}
			key := &d.nodes[k]
			key.end, key.next, key.flags, key.val = int32(end), k+1, f, k+1
			if f&flagEscaped != 0 {
				key.bufStart = int32(len(d.buf))
				d.buf = appendDecoded(d.buf, b[pos+1:end-1])
				d.nodes[k].bufEnd = int32(len(d.buf))
			}
			flags |= f
			pos = d.skipWSLaidOut(end, 0)
			if pos >= len(b) || b[pos] != ':' {
				return pos, 0, d.fail(pos, ErrSyntax, "expecting ':' delimiter")
			}
			pos = d.skipWSLaidOut(pos+1, 1)
			pos, f, err = d.value(pos)
			if err != nil {
				return pos, 0, err
			}
			flags |= f
			count++
			pos = d.skipWSLaidOut(pos, 0)
			if pos < len(b) && b[pos] == '}' {
				pos++
				break
			}
			if pos >= len(b) || b[pos] != ',' {
				return pos, 0, d.fail(pos, ErrSyntax, "expecting ',' delimiter")
			}
			pos = d.skipWSLaidOut(pos+1, 1)
		}
	}
	d.depth--
	flags &= flagNonStandard
	n := &d.nodes[idx]
	n.end, n.next, n.flags = int32(pos), int32(len(d.nodes)), flags
	n.count = d.dedup(idx, count)
	if n.count < count {
		d.notCanonical = true // json.dumps writes each key once
	}
	if n.count < count && flags != 0 {
		// A value a later key replaced is not in the document Python
		// reads, so it cannot make the object non-standard.
		flags = d.liveFlags(idx)
		d.nodes[idx].flags = flags
	}
	return pos, flags, nil
}

// liveFlags returns the flags of object obj's members that survive
// deduplication: each first key and the last value it points at.
func (d *Document) liveFlags(obj int32) uint8 {
	var flags uint8
	for k := obj + 1; k < d.nodes[obj].next; k = d.nodes[k+1].next {
		if d.nodes[k].flags&flagShadowed == 0 {
			flags |= d.nodes[d.nodes[k].val].flags
		}
	}
	return flags & flagNonStandard
}

// keyBytes returns the canonical bytes of key node k: its code points in
// UTF-8, surrogates encoded like any other code point, so that two keys are
// the same Python str exactly when their canonical bytes are equal.
func (d *Document) keyBytes(k int32) []byte {
	n := &d.nodes[k]
	if n.flags&flagEscaped != 0 {
		return d.buf[n.bufStart:n.bufEnd]
	}
	return d.body[n.start+1 : n.end-1]
}

// smallObject is the member count up to which duplicate keys are found by
// comparing every pair; beyond it a hash table keeps the cost linear.
const smallObject = 16

// dedup marks every key that repeats an earlier one as shadowed and points the
// first occurrence at the last value, as a Python dict built by json.loads
// does. It returns the number of distinct keys.
func (d *Document) dedup(obj, count int32) int32 {
	if count < 2 {
		return count
	}
	distinct := count
	end := d.nodes[obj].next
	if count <= smallObject {
		for k := obj + 1; k < end; k = d.nodes[k+1].next {
			kb := d.keyBytes(k)
			for p := obj + 1; p < k; p = d.nodes[p+1].next {
				if d.nodes[p].flags&flagShadowed == 0 && bytes.Equal(d.keyBytes(p), kb) {
					d.nodes[p].val = k + 1
					d.nodes[k].flags |= flagShadowed
					distinct--
					break
				}
			}
		}
		return distinct
	}
	if !d.seeded {
		// A per-Document random seed: crafted keys cannot all collide.
		d.seed, d.seeded = maphash.MakeSeed(), true
	}
	size := 1
	for size < int(count)*2 {
		size <<= 1
	}
	if cap(d.table) < size {
		d.table = make([]int32, size)
	}
	table := d.table[:size]
	for i := range table {
		table[i] = -1
	}
	mask := uint64(size - 1)
	for k := obj + 1; k < end; k = d.nodes[k+1].next {
		kb := d.keyBytes(k)
		for h := maphash.Bytes(d.seed, kb) & mask; ; h = (h + 1) & mask {
			p := table[h]
			if p < 0 {
				table[h] = k
				break
			}
			if bytes.Equal(d.keyBytes(p), kb) {
				d.nodes[p].val = k + 1
				d.nodes[k].flags |= flagShadowed
				distinct--
				break
			}
		}
	}
	return distinct
}

// scanString validates the string starting with the quote at pos and returns
// the position after its closing quote and its flags. It follows CPython's
// strict scanstring plus the UTF-8 'surrogatepass' decoding of the body.
func (d *Document) scanString(pos int) (int, uint8, error) {
	b := d.body
	var flags uint8
	i := pos + 1
	for {
		// Most of a string is printable ASCII with nothing to check: skip
		// it with one table lookup a byte (Senfenico's data string is a
		// whole JSON document, so this loop dominates the parse).
		for i < len(b) && plainStringByte[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, 0, d.fail(pos, ErrSyntax, "unterminated string")
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, flags, nil
		case c == '\\':
			flags |= flagEscaped
			if i+1 >= len(b) {
				return i, 0, d.fail(pos, ErrSyntax, "unterminated string")
			}
			switch b[i+1] {
			case '/':
				d.notCanonical = true // json.dumps writes '/' as it is
				i += 2
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return i, 0, d.fail(i, ErrSyntax, "invalid \\uXXXX escape")
				}
				if !d.notCanonical {
					d.notCanonical = !uEscapeCanonical(r, b[i+2:i+6])
				}
				i += 6
				if isHighSurrogate(r) {
					if r2, ok := hex4(b, i+2); ok && b[i] == '\\' && b[i+1] == 'u' && isLowSurrogate(r2) {
						if !d.notCanonical {
							d.notCanonical = !uEscapeCanonical(r2, b[i+2:i+6])
						}
						i += 6
						continue
					}
				}
				if isSurrogate(r) {
					flags |= flagSurrogate
				}
			default:
				return i, 0, d.fail(i, ErrSyntax, "invalid \\escape")
			}
		case c < 0x20:
			return i, 0, d.fail(i, ErrSyntax, "invalid control character")
		case c < 0x80: // DEL, which json.dumps escapes
			d.notCanonical = true
			i++
		default:
			d.notCanonical = true // json.dumps escapes every non-ASCII code point
			r, size := decodeRune(b[i:])
			if size == 0 {
				return i, 0, d.fail(i, ErrEncoding, "invalid UTF-8")
			}
			if isSurrogate(r) {
				flags |= flagSurrogate
			}
			i += size
		}
	}
}

// plainStringByte marks the bytes a string may hold as they are and
// json.dumps writes as they are: printable ASCII other than the quote and
// the backslash.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// uEscapeCanonical reports whether json.dumps writes code unit r as the
// escape \uXXXX with these hex digits: it writes printable ASCII as it is,
// five controls as two-byte escapes, and the rest in lowercase hex.
func uEscapeCanonical(r rune, digits []byte) bool {
	switch {
	case r >= 0x20 && r < 0x7f, r == '\b', r == '\f', r == '\n', r == '\r', r == '\t':
		return false
	}
	for _, c := range digits {
		if c >= 'A' && c <= 'F' {
			return false
		}
	}
	return true
}

// hex4 decodes the four hex digits at b[i:], either case.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isSurrogate(r rune) bool     { return r >= 0xd800 && r <= 0xdfff }
func isHighSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdbff }
func isLowSurrogate(r rune) bool  { return r >= 0xdc00 && r <= 0xdfff }

// decodeRune decodes one multi-byte UTF-8 sequence as Python's UTF-8 codec
// with 'surrogatepass' does: strict UTF-8, except that ED A0..BF xx (encoded
// surrogates) is accepted. It returns size 0 for anything invalid.
func decodeRune(s []byte) (rune, int) {
	cont := func(i int) bool { return i < len(s) && s[i]&0xc0 == 0x80 }
	c := s[0]
	switch {
	case c < 0xc2:
		return 0, 0
	case c < 0xe0:
		if !cont(1) {
			return 0, 0
		}
		return rune(c&0x1f)<<6 | rune(s[1]&0x3f), 2
	case c < 0xf0:
		if !cont(1) || !cont(2) || c == 0xe0 && s[1] < 0xa0 {
			return 0, 0
		}
		return rune(c&0x0f)<<12 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), 3
	case c < 0xf5:
		if !cont(1) || !cont(2) || !cont(3) || c == 0xf0 && s[1] < 0x90 || c == 0xf4 && s[1] >= 0x90 {
			return 0, 0
		}
		return rune(c&0x07)<<18 | rune(s[1]&0x3f)<<12 | rune(s[2]&0x3f)<<6 | rune(s[3]&0x3f), 4
	}
	return 0, 0
}

// appendCodePoint appends r in UTF-8, encoding surrogates the way
// 'surrogatepass' does (three bytes, ED xx xx), which utf8.AppendRune refuses.
func appendCodePoint(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xc0|byte(r>>6), 0x80|byte(r)&0x3f)
	case r < 0x10000:
		return append(dst, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return append(dst, 0xf0|byte(r>>18), 0x80|byte(r>>12)&0x3f, 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
}

// appendDecoded appends the code points of s, the validated inside of a
// string literal, in UTF-8 with surrogates encoded as by appendCodePoint. An
// escaped high surrogate followed by an escaped low one becomes one code
// point, as in CPython's scanstring; any other surrogate stays alone.
func appendDecoded(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+j]...)
		i += j
		switch e := s[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			i += 6
			if isHighSurrogate(r) && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
				if r2, ok := hex4(s, i+2); ok && isLowSurrogate(r2) {
					r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
					i += 6
				}
			}
			dst = appendCodePoint(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}
