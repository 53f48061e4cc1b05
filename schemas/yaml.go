package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// object is a JSON object that keeps its members in the order they were
// added, so that the AsyncAPI document lists its fields in the order the
// specification does, keeps each schema file's own order, and renders to
// the same bytes on every run. Values are object, []any, string, bool, int,
// json.Number or nil.
type object []member

type member struct {
	key   string
	value any
}

// get returns the value of key.
func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// with returns o with key set to value: in place when o has key, at the
// end otherwise.
func (o object) with(key string, value any) object {
	for i, m := range o {
		if m.key == key {
			out := append(object(nil), o...)
			out[i].value = value
			return out
		}
	}
	return append(append(object(nil), o...), member{key, value})
}

// without returns o less the members named keys.
func (o object) without(keys ...string) object {
	out := make(object, 0, len(o))
	for _, m := range o {
		if !containsString(keys, m.key) {
			out = append(out, m)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// decodeOrdered parses one JSON value, objects as object in file order,
// numbers as json.Number.
func decodeOrdered(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	v, err := decodeValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err == nil {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

func decodeValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := object{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(d)
			if err != nil {
				return nil, err
			}
			o = append(o, member{k.(string), v})
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for d.More() {
			v, err := decodeValue(d)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := d.Token()
		return a, err
	}
	return tok, nil
}

// MarshalJSON writes o's members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// appendYAML appends v as a YAML 1.2 block document: mappings and sequences
// in block style indented by two spaces, strings plain where no YAML
// reader could take them for anything else and double-quoted otherwise.
// The tree is JSON-shaped, so the YAML means exactly what its JSON form
// does (TestAsyncAPIYAMLIsItsJSON has a YAML parser check that).
func appendYAML(b []byte, v any) []byte {
	return appendBlock(b, v, 0, false)
}

// appendBlock appends a non-empty collection v at indent. inline is true
// when its first line follows a sequence's "- " already written (a mapping
// in a sequence starts on the dash's line).
func appendBlock(b []byte, v any, indent int, inline bool) []byte {
	pad := strings.Repeat(" ", indent)
	switch v := v.(type) {
	case object:
		for i, m := range v {
			if i > 0 || !inline {
				b = append(b, pad...)
			}
			b = appendScalarString(b, m.key)
			b = append(b, ':')
			b = appendValue(b, m.value, indent+2)
		}
	case []any:
		for i, e := range v {
			if i > 0 || !inline {
				b = append(b, pad...)
			}
			if o, ok := e.(object); ok && len(o) > 0 {
				b = appendBlock(append(b, "- "...), o, indent+2, true)
				continue
			}
			b = append(b, '-')
			b = appendValue(b, e, indent+2)
		}
	}
	return b
}

// appendValue appends what follows a mapping key's colon or a sequence's
// dash: a scalar or an empty collection on the same line, any other
// collection on the lines below.
func appendValue(b []byte, v any, indent int) []byte {
	switch v := v.(type) {
	case object:
		if len(v) == 0 {
			return append(b, " {}\n"...)
		}
		return appendBlock(append(b, '\n'), v, indent, false)
	case []any:
		if len(v) == 0 {
			return append(b, " []\n"...)
		}
		return appendBlock(append(b, '\n'), v, indent, false)
	}
	b = append(b, ' ')
	b = appendScalar(b, v)
	return append(b, '\n')
}

func appendScalar(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case json.Number:
		return append(b, v...)
	case string:
		return appendScalarString(b, v)
	}
	panic(fmt.Sprintf("schemas: no YAML form for %T", v))
}

// yamlWords are the plain scalars a YAML 1.1 or 1.2 reader takes for a
// boolean or null.
var yamlWords = []string{"true", "false", "yes", "no", "on", "off", "y", "n", "null"}

// appendScalarString appends s plain when it is a word of letters, digits
// and _ . / $ - starting with a letter, _, $ or / (and not one of
// yamlWords), double-quoted otherwise.
func appendScalarString(b []byte, s string) []byte {
	if plainSafe(s) {
		return append(b, s...)
	}
	return appendQuoted(b, s)
}

func plainSafe(s string) bool {
	if s == "" || containsString(yamlWords, strings.ToLower(s)) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$' || c == '/'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '.' || c == '-')) {
			return false
		}
	}
	return true
}

// appendQuoted appends s as a YAML double-quoted scalar. Everything outside
// YAML's printable set, and the line and paragraph separators and the byte
// order mark that some readers break lines at or drop, goes as \uXXXX;
// invalid UTF-8 as U+FFFD.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff:
			b = fmt.Appendf(b, `\u%04X`, r)
		case r == utf8.RuneError:
			b = append(b, `\uFFFD`...)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}
