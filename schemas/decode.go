package schemas

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
)

var utf8BOM = []byte("\xef\xbb\xbf")

// documents recycles parse trees between validations.
var documents = sync.Pool{New: func() any { return new(pyjson.Document) }}

// decode turns a body into the value tree the validator walks: maps,
// slices, strings, json.Number, bools and nil, exactly what
// jsonschema.UnmarshalJSON (encoding/json with UseNumber) returns.
//
// The library's decoder is the slow half of a validation (a json.Decoder,
// its buffer and reflection per value; about half the CPU and most of the
// garbage of a warn-mode check). Bodies the bridge publishes are plain JSON,
// so they go through pyjson instead, which parses into a reused flat array
// and hands out strings and numbers as substrings of one copy of the body.
// Anything pyjson and encoding/json could disagree on (NaN or Infinity,
// lone surrogates, invalid UTF-8, a byte order mark, nesting deeper than
// pyjson.MaxDepth, integers longer than pyjson.MaxIntDigits) takes
// the library's own decoder, so the result never depends on which path ran;
// a fuzz test holds the two paths equal.
func decode(body []byte) (any, error) {
	// CPython (and so pyjson) skips a UTF-8 byte order mark; encoding/json
	// refuses it.
	if bytes.HasPrefix(body, utf8BOM) {
		return jsonschema.UnmarshalJSON(bytes.NewReader(body))
	}
	d := documents.Get().(*pyjson.Document)
	defer documents.Put(d)
	if pyjson.ParseInto(d, body) == nil && d.Root().Standard() {
		if v, ok := toValue(d.Root()); ok {
			return v, nil
		}
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(body))
}

// toValue converts one parsed value; ok is false when a string cannot be a
// Go string (a lone surrogate), which the caller hands to encoding/json.
func toValue(v pyjson.Value) (any, bool) {
	switch v.Kind() {
	case pyjson.KindNull:
		return nil, true
	case pyjson.KindBool:
		b, _ := v.Bool()
		return b, true
	case pyjson.KindInt, pyjson.KindFloat:
		n, ok := v.NumberText()
		return json.Number(n), ok
	case pyjson.KindString:
		return v.Str()
	case pyjson.KindArray:
		out := make([]any, 0, v.Len())
		for e := range v.Elements() {
			ev, ok := toValue(e)
			if !ok {
				return nil, false
			}
			out = append(out, ev)
		}
		return out, true
	case pyjson.KindObject:
		out := make(map[string]any, v.Len())
		for k, e := range v.Members() {
			key, ok := k.Str()
			if !ok {
				return nil, false
			}
			ev, ok := toValue(e)
			if !ok {
				return nil, false
			}
			out[key] = ev
		}
		return out, true
	}
	return nil, false
}
