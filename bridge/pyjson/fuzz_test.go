package pyjson_test

import (
	"bytes"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
)

// FuzzParse checks what holds for any body: no panic; Canonical() says
// exactly whether the body is its own dump; the dump of an accepted body
// parses again and dumps to itself (unless two distinct keys dump alike,
// '\ud83d\ude00' as two code points and as one: CPython then merges them on
// the second round too; the dump of that dump is a fixed point); every value's Raw span is a JSON text
// of the same kind that dumps like the value; repeated parses into one
// Document agree.
func FuzzParse(f *testing.F) {
	for _, c := range loadPythonVectors(f) {
		if body := mustB64(f, c.Body); len(body) < 2048 {
			f.Add(body)
		}
	}
	for _, v := range loadSenfenicoVectors(f) {
		f.Add([]byte(v.Body))
	}
	var reused pyjson.Document
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := pyjson.Parse(body)
		if rerr := pyjson.ParseInto(&reused, body); (rerr == nil) != (err == nil) {
			t.Fatalf("Parse: %v, ParseInto: %v", err, rerr)
		}
		if err != nil {
			return
		}
		out := d.AppendPython(nil)
		if again := reused.AppendPython(nil); !bytes.Equal(out, again) {
			t.Fatalf("reused Document dumps %q, fresh one %q", again, out)
		}
		if d.Canonical() != bytes.Equal(out, body) || reused.Canonical() != d.Canonical() {
			t.Fatalf("Canonical() = %v (reused %v) for %q, which dumps as %q", d.Canonical(), reused.Canonical(), body, out)
		}
		d2, err := pyjson.Parse(out)
		if err != nil {
			t.Fatalf("dump %q does not parse: %v", out, err)
		}
		out2 := d2.AppendPython(nil)
		if d2.Canonical() != bytes.Equal(out2, out) {
			t.Fatalf("Canonical() = %v for the dump %q, which dumps as %q", d2.Canonical(), out, out2)
		}
		if !bytes.Equal(out, out2) && !keysCollide(d.Root()) {
			t.Fatalf("dump not idempotent:\n%q\n%q", out, out2)
		}
		d3, err := pyjson.Parse(out2)
		if err != nil {
			t.Fatalf("second dump %q does not parse: %v", out2, err)
		}
		if out3 := d3.AppendPython(nil); !bytes.Equal(out2, out3) {
			t.Fatalf("second dump not idempotent:\n%q\n%q", out2, out3)
		}
		checkSpans(t, d.Root())
	})
}

func checkSpans(t *testing.T, v pyjson.Value) {
	t.Helper()
	raw := v.Raw()
	sub, err := pyjson.Parse(raw)
	if err != nil {
		t.Fatalf("Raw %q of a %v does not parse: %v", raw, v.Kind(), err)
	}
	if sub.Root().Kind() != v.Kind() {
		t.Fatalf("Raw %q parses as %v, value is %v", raw, sub.Root().Kind(), v.Kind())
	}
	if a, b := sub.AppendPython(nil), v.AppendPython(nil); !bytes.Equal(a, b) {
		t.Fatalf("Raw %q dumps %q, value dumps %q", raw, a, b)
	}
	if sub.Root().Standard() != v.Standard() {
		t.Fatalf("Raw %q: Standard differs", raw)
	}
	switch v.Kind() {
	case pyjson.KindArray:
		n := 0
		for e := range v.Elements() {
			checkSpans(t, e)
			n++
		}
		if n != v.Len() {
			t.Fatalf("Elements yielded %d, Len %d", n, v.Len())
		}
	case pyjson.KindObject:
		n := 0
		for k, e := range v.Members() {
			checkSpans(t, k)
			checkSpans(t, e)
			if s, ok := k.Str(); ok {
				if got, ok := v.Lookup(s); !ok || !bytes.Equal(got.Raw(), e.Raw()) {
					t.Fatalf("Lookup(%q) = %q, Members gave %q", s, got.Raw(), e.Raw())
				}
			}
			n++
		}
		if n != v.Len() {
			t.Fatalf("Members yielded %d, Len %d", n, v.Len())
		}
	}
}

// keysCollide reports whether some object under v has two distinct keys with
// the same dump: a surrogate pair held as two code points next to the code
// point it encodes. json.dumps writes both as the same escapes.
func keysCollide(v pyjson.Value) bool {
	switch v.Kind() {
	case pyjson.KindArray:
		for e := range v.Elements() {
			if keysCollide(e) {
				return true
			}
		}
	case pyjson.KindObject:
		seen := map[string]bool{}
		for k, e := range v.Members() {
			dk := string(k.AppendPython(nil))
			if seen[dk] || keysCollide(e) {
				return true
			}
			seen[dk] = true
		}
	}
	return false
}
