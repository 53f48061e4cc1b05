package natssink

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrHeaderValue is returned (wrapped) by DecodeHeaderValue and Decode for a
// header value that is not what the CloudEvents NATS binding allows: a
// percent sign not followed by two hexadecimal digits, an unterminated
// quoted string, or bytes that do not decode to UTF-8.
var ErrHeaderValue = errors.New("natssink: malformed CloudEvents header value")

// The CloudEvents NATS protocol binding (3.1.3.2, "NATS Header Values")
// says a string attribute's header value MUST be percent-encoded: space,
// double quote, percent and every character outside printable ASCII
// (U+0021-U+007E), each byte of its UTF-8 form as %XY with upper-case hex.
// Nothing else is encoded, so the fixed values and the routed events' ids,
// types and media types go out unchanged.

// needsEscape reports whether byte c of a UTF-8 string is percent-encoded.
func needsEscape(c byte) bool {
	return c <= ' ' || c == '"' || c == '%' || c > '~'
}

// escapedLen returns the length of s percent-encoded: len(s) when nothing
// in it needs encoding.
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n += 2
		}
	}
	return n
}

// writeEscaped writes s percent-encoded to b.
func writeEscaped(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !needsEscape(c) {
			continue
		}
		b.WriteString(s[start:i])
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
		start = i + 1
	}
	b.WriteString(s[start:])
}

// DecodeHeaderValue returns the attribute value that the CloudEvents header
// value v carries, as the NATS binding says a receiver decodes it: a value
// in double quotes (as senders before the binding required percent-encoding
// wrote them) is unquoted first, then one round of percent-decoding, with
// upper- or lower-case hex, is applied, and the result must be UTF-8. A
// value with neither quotes nor percent signs comes back as it is, without
// allocating. It fails with an error wrapping ErrHeaderValue. It is safe to
// call concurrently.
//
// Consumers reading the bridge's NATS headers themselves (ce-type,
// ce-deadletterdetail) use it; Decode applies it to every attribute.
func DecodeHeaderValue(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		unquoted, err := unquote(v[1 : len(v)-1])
		if err != nil {
			return "", err
		}
		v = unquoted
	}
	if strings.IndexByte(v, '%') < 0 {
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("%w: not UTF-8", ErrHeaderValue)
		}
		return v, nil
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		var hi, lo byte
		ok := i+2 < len(v)
		if ok {
			var okHi, okLo bool
			hi, okHi = unhex(v[i+1])
			lo, okLo = unhex(v[i+2])
			ok = okHi && okLo
		}
		if !ok {
			return "", fmt.Errorf("%w: %% at byte %d is not followed by two hex digits", ErrHeaderValue, i)
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(out) {
		// The binding: "encoded byte sequences which are invalid in UTF-8
		// MUST be rejected".
		return "", fmt.Errorf("%w: percent-decodes to bytes that are not UTF-8", ErrHeaderValue)
	}
	return string(out), nil
}

// unquote undoes the backslash escapes (quoted-pair) of the inside of an
// RFC 7230 quoted-string.
func unquote(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			if i+1 == len(s) {
				return "", fmt.Errorf("%w: quoted string ends in a backslash", ErrHeaderValue)
			}
			i++
			c = s[i]
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
