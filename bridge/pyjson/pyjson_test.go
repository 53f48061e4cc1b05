package pyjson_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
)

type pythonCase struct {
	Name    string `json:"name"`
	Body    string `json:"body"`
	OK      bool   `json:"ok"`
	Dumps   string `json:"dumps"`
	Error   string `json:"error"`
	GoError string `json:"go_error"`
}

func loadPythonVectors(tb testing.TB) []pythonCase {
	tb.Helper()
	raw, err := os.ReadFile("testdata/python_vectors.json")
	if err != nil {
		tb.Fatal(err)
	}
	var file struct {
		Python string       `json:"python"`
		Cases  []pythonCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		tb.Fatal(err)
	}
	if len(file.Cases) < 300 {
		tb.Fatalf("only %d cases in python_vectors.json", len(file.Cases))
	}
	return file.Cases
}

func mustB64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// goErrors are the sentinels for bodies json.loads accepts but pyjson refuses
// on purpose (see the package doc), keyed by the generator's go_error field.
var goErrors = map[string]error{
	"depth":    pyjson.ErrDepth,
	"encoding": pyjson.ErrUnsupportedEncoding,
}

// checkAgainst compares pyjson with one answer of CPython: pyOK and pyDumps.
func checkAgainst(t *testing.T, body []byte, pyOK bool, pyDumps []byte, goError string) {
	t.Helper()
	d, err := pyjson.Parse(body)
	switch {
	case goError != "":
		if !errors.Is(err, goErrors[goError]) {
			t.Fatalf("Parse(%q): err = %v, want %v", body, err, goErrors[goError])
		}
	case !pyOK:
		if err == nil {
			t.Fatalf("Parse(%q) accepted a body json.loads rejects; dumps %q", body, d.AppendPython(nil))
		}
		var se *pyjson.SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("Parse(%q): err %T is not a *SyntaxError", body, err)
		}
	default:
		if err != nil {
			t.Fatalf("Parse(%q): %v; json.loads accepts it", body, err)
		}
		if got := d.AppendPython(nil); !bytes.Equal(got, pyDumps) {
			t.Fatalf("AppendPython(%q)\n got %q\nwant %q", body, got, pyDumps)
		}
		if d.Canonical() != bytes.Equal(body, pyDumps) {
			t.Fatalf("Canonical() = %v for %q, which json.dumps writes as %q", d.Canonical(), body, pyDumps)
		}
	}
}

// TestCanonical: each departure from json.dumps's form, alone in a body
// that is otherwise in that form, makes the body not canonical.
func TestCanonical(t *testing.T) {
	canonical := []string{
		`{}`, `[]`, `""`, `0`, `-1`, `12345678901234567890123`, `1.5`, `1e+16`, `1e-05`, `-0.0`,
		`NaN`, `-Infinity`, `true`, `null`,
		`{"a": [1, "b", {"c": null}], "d": "e"}`,
		`"\" \\ \b \f \n \r \t"`, `"\u0000 \u001f \u007f \u00e9 \ud83d\ude00 \ud800"`,
		`"<html/> ~ ' ` + "`" + `"`,
	}
	notCanonical := []string{
		"\xef\xbb\xbf{}", ` {}`, `{} `, `{ }`, `[ ]`, `[1,2]`, `[1,  2]`, "[1,\t2]", `[1 , 2]`,
		`{"a":1}`, `{"a" : 1}`, `{"a":  1}`, `{"a": 1,"b": 2}`, `{"a": 1, "a": 2}`,
		`-0`, `1.50`, `1E+16`, `1e16`, `0.00001`, `1e400`, `10000000000000000.0`,
		`"\/"`, `"\u0041"`, `"\u000a"`, `"\u00E9"`, `"\uD83D\uDE00"`, `"\ud83d\uDE00"`,
		"\"\x7f\"", "\"\xc3\xa9\"",
	}
	for _, body := range canonical {
		d, err := pyjson.Parse([]byte(body))
		if err != nil || !d.Canonical() {
			t.Errorf("Parse(%s): Canonical() false (err %v), want true", body, err)
		}
	}
	for _, body := range notCanonical {
		d, err := pyjson.Parse([]byte(body))
		if err != nil || d.Canonical() {
			t.Errorf("Parse(%q): Canonical() true (err %v), want false", body, err)
		}
	}
	if (&pyjson.Document{}).Canonical() {
		t.Error("an empty Document is canonical")
	}
}

func TestPythonVectors(t *testing.T) {
	for _, c := range loadPythonVectors(t) {
		t.Run(c.Name, func(t *testing.T) {
			checkAgainst(t, mustB64(t, c.Body), c.OK, mustB64(t, c.Dumps), c.GoError)
		})
	}
}

type senfenicoVector struct {
	Name             string  `json:"name"`
	Body             string  `json:"body"`
	Header           *string `json:"header"`
	Key              string  `json:"key"`
	ValidSignature   bool    `json:"valid_signature"`
	PythonSDKAccepts bool    `json:"python_sdk_accepts"`
	Event            string  `json:"event"`
}

func loadSenfenicoVectors(tb testing.TB) []senfenicoVector {
	tb.Helper()
	raw, err := os.ReadFile("../../../shared/testdata/senfenico-vectors.json")
	if err != nil {
		raw, err = os.ReadFile("/work/shared/testdata/senfenico-vectors.json")
	}
	if err != nil {
		tb.Fatal(err)
	}
	var file struct {
		Vectors []senfenicoVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		tb.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		tb.Fatal("no vectors")
	}
	return file.Vectors
}

// TestSenfenicoSignatures checks the Python SDK's rule on Senfenico's vectors:
// sha256(json.dumps(json.loads(body)) + key) is the header exactly when the
// SDK accepts the delivery.
func TestSenfenicoSignatures(t *testing.T) {
	for _, v := range loadSenfenicoVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			header := ""
			if v.Header != nil {
				header = strings.ToLower(*v.Header)
			}
			d, err := pyjson.Parse([]byte(v.Body))
			if v.PythonSDKAccepts {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				sum := sha256.Sum256(append(d.AppendPython(nil), v.Key...))
				if got := hex.EncodeToString(sum[:]); got != header {
					t.Fatalf("digest %s, header %s", got, header)
				}
				if v.Event != "" {
					ev, ok := d.Root().Lookup("event")
					if s, _ := ev.Str(); !ok || s != v.Event {
						t.Fatalf("event = %q, want %q", s, v.Event)
					}
				}
				return
			}
			if !v.ValidSignature || err != nil {
				return // nothing the Python rule could match
			}
			sum := sha256.Sum256(append(d.AppendPython(nil), v.Key...))
			if got := hex.EncodeToString(sum[:]); got == header {
				t.Fatalf("digest matches the header of a delivery the Python SDK refuses")
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   error
		offset int
	}{
		{name: "empty", body: "", want: pyjson.ErrSyntax, offset: 0},
		{name: "extra data", body: "[1] x", want: pyjson.ErrSyntax, offset: 4},
		{name: "bad escape", body: `"ab\q"`, want: pyjson.ErrSyntax, offset: 3},
		{name: "control char", body: "\"a\x01\"", want: pyjson.ErrSyntax, offset: 2},
		{name: "invalid utf-8", body: "\"a\xff\"", want: pyjson.ErrEncoding, offset: 2},
		{name: "overlong", body: "\"\xc0\xaf\"", want: pyjson.ErrEncoding, offset: 1},
		{name: "utf-16", body: "[\x001\x00]\x00", want: pyjson.ErrUnsupportedEncoding, offset: 0},
		{name: "utf-16 bom", body: "\xff\xfe[\x00]\x00", want: pyjson.ErrUnsupportedEncoding, offset: 0},
		{name: "depth", body: strings.Repeat("[", 513) + strings.Repeat("]", 513), want: pyjson.ErrDepth, offset: 512},
		{name: "long int", body: "[" + strings.Repeat("7", 4301) + "]", want: pyjson.ErrIntTooLong, offset: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := pyjson.Parse([]byte(tt.body))
			if d != nil || !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, %v; want nil, %v", d, err, tt.want)
			}
			var se *pyjson.SyntaxError
			if !errors.As(err, &se) || se.Offset != tt.offset {
				t.Fatalf("err = %#v, want offset %d", err, tt.offset)
			}
			if !strings.HasPrefix(err.Error(), "pyjson: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestParseIntoResetsOnError(t *testing.T) {
	var d pyjson.Document
	if err := pyjson.ParseInto(&d, []byte(`{"a": 1}`)); err != nil {
		t.Fatal(err)
	}
	if err := pyjson.ParseInto(&d, []byte(`{"a": `)); err == nil {
		t.Fatal("ParseInto accepted a truncated body")
	}
	if k := d.Root().Kind(); k != pyjson.KindInvalid {
		t.Fatalf("Root().Kind() after a failed parse = %v, want invalid", k)
	}
	if got := d.AppendPython([]byte("x")); string(got) != "x" {
		t.Fatalf("AppendPython after a failed parse = %q", got)
	}
}

func TestLookup(t *testing.T) {
	body := []byte(`{"a": 1, "b": {"c": [true, null]}, "\u0061": "last", "\ud83d\ude00": "pair", "` +
		"\xed\xa0\x80" + `": "lone", "esc\"aped": 2}`)
	d, err := pyjson.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	root := d.Root()
	tests := []struct {
		name string
		key  string
		raw  string // "" when the key must be missing
	}{
		{name: "last value wins across escapes", key: "a", raw: `"last"`},
		{name: "nested object", key: "b", raw: `{"c": [true, null]}`},
		{name: "escaped pair matches UTF-8 key", key: "\U0001F600", raw: `"pair"`},
		{name: "escaped quote", key: `esc"aped`, raw: "2"},
		{name: "missing", key: "z"},
		{name: "lone surrogate is no UTF-8 key", key: "\xed\xa0\x80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := root.Lookup(tt.key)
			if ok != (tt.raw != "") || string(v.Raw()) != tt.raw {
				t.Fatalf("Lookup(%q) = %q, %v; want %q", tt.key, v.Raw(), ok, tt.raw)
			}
		})
	}
	if n := root.Len(); n != 5 {
		t.Fatalf("Len = %d, want 5 distinct keys", n)
	}
	var keys []string
	for k, v := range root.Members() {
		keys = append(keys, string(k.Raw())+"="+string(v.Raw()))
	}
	want := []string{`"a"="last"`, `"b"={"c": [true, null]}`, `"\ud83d\ude00"="pair"`,
		"\"\xed\xa0\x80\"=\"lone\"", `"esc\"aped"=2`}
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Fatalf("Members = %q, want %q", keys, want)
	}
	c, _ := root.Lookup("b")
	c, _ = c.Lookup("c")
	if c.Len() != 2 || c.Index(0).Kind() != pyjson.KindBool || c.Index(1).Kind() != pyjson.KindNull ||
		c.Index(2).Kind() != pyjson.KindInvalid {
		t.Fatalf("array c: len %d, kinds %v %v %v", c.Len(), c.Index(0).Kind(), c.Index(1).Kind(), c.Index(2).Kind())
	}
	n := 0
	for range c.Elements() {
		n++
	}
	if n != 2 {
		t.Fatalf("Elements yielded %d values", n)
	}
	if _, ok := c.Lookup("a"); ok {
		t.Fatal("Lookup on an array succeeded")
	}
}

// TestLargeObjectDuplicates exercises the hash-table path of duplicate keys.
func TestLargeObjectDuplicates(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 100 {
		if i > 0 {
			b.WriteString(", ")
		}
		// keys k0..k29 repeat; k7 is also written as \u006b7
		key := "k" + string(rune('0'+i%10)) + string(rune('0'+i/10%3))
		if i == 99 {
			key = `\u006b92`
		}
		b.WriteString(`"` + key + `": ` + string(rune('0'+i%10)))
	}
	b.WriteString("}")
	d, err := pyjson.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if n := d.Root().Len(); n != 30 {
		t.Fatalf("Len = %d, want 30", n)
	}
	v, ok := d.Root().Lookup("k92")
	if !ok || string(v.Raw()) != "9" {
		t.Fatalf("Lookup(k92) = %q, %v", v.Raw(), ok)
	}
	first := ""
	for k := range d.Root().Members() {
		first = string(k.Raw())
		break
	}
	if first != `"k00"` {
		t.Fatalf("first member %s, want \"k00\"", first)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   string
		ok     bool
		strict bool // Standard()
	}{
		{name: "plain", body: `"abc"`, want: "abc", ok: true, strict: true},
		{name: "escapes", body: `"a\"\\\/\b\f\n\r\t\u00e9"`, want: "a\"\\/\b\f\n\r\té", ok: true, strict: true},
		{name: "escaped pair", body: `"\uD83D\uDE00"`, want: "\U0001F600", ok: true, strict: true},
		{name: "raw astral", body: "\"\xf0\x9f\x98\x80\"", want: "\U0001F600", ok: true, strict: true},
		{name: "escaped lone surrogate", body: `"x\ud800"`, ok: false, strict: true},
		{name: "raw lone surrogate", body: "\"\xed\xa0\x80\"", ok: false, strict: true},
		{name: "cesu pair stays two surrogates", body: "\"\xed\xa0\xbd\xed\xb8\x80\"", ok: false, strict: true},
		{name: "not a string", body: `1`, ok: false, strict: true},
		{name: "NaN", body: `NaN`, ok: false, strict: false},
		{name: "nested -Infinity", body: `{"a": [1, -Infinity]}`, ok: false, strict: false},
		{name: "nested raw surrogate key", body: "[{\"\xed\xb0\x80\": 1}]", ok: false, strict: true},
		{name: "replaced NaN", body: `{"a": NaN, "b": [1], "a": 1}`, ok: false, strict: true},
		{name: "NaN replacing a number", body: `{"a": 1, "a": NaN}`, ok: false, strict: false},
		{name: "replaced NaN deeper", body: `[{"a": {"x": Infinity}, "a": {}}]`, ok: false, strict: true},
		{name: "NaN beside a replaced key", body: `{"a": 1, "b": NaN, "a": 2}`, ok: false, strict: false},
		{name: "big int is standard", body: `123456789012345678901234567890`, ok: false, strict: true},
		{name: "float that overflows", body: `[1.5, 1e400]`, ok: false, strict: false},
		{name: "negative float that overflows", body: `{"a": -2E+308}`, ok: false, strict: false},
		{name: "long fixed float that overflows", body: `1` + strings.Repeat("0", 309) + `.5`, ok: false, strict: false},
		{name: "long fixed float that fits", body: `1` + strings.Repeat("0", 307) + `.5`, ok: false, strict: true},
		{name: "large float that fits", body: `1.7e308`, ok: false, strict: true},
		{name: "underflow is standard", body: `1e-400`, ok: false, strict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := pyjson.Parse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			v := d.Root()
			s, ok := v.Str()
			if s != tt.want || ok != tt.ok {
				t.Fatalf("Str = %q, %v; want %q, %v", s, ok, tt.want, tt.ok)
			}
			b, ok := v.AppendStr([]byte("pre:"))
			if ok != tt.ok || (ok && string(b) != "pre:"+tt.want) || (!ok && string(b) != "pre:") {
				t.Fatalf("AppendStr = %q, %v", b, ok)
			}
			if v.Standard() != tt.strict {
				t.Fatalf("Standard = %v, want %v", v.Standard(), tt.strict)
			}
		})
	}
}

func TestScalars(t *testing.T) {
	d, err := pyjson.Parse([]byte(`[true, false, -42, 9223372036854775808, 30.5, 1e400, NaN, "s"]`))
	if err != nil {
		t.Fatal(err)
	}
	r := d.Root()
	if b, ok := r.Index(0).Bool(); !b || !ok {
		t.Fatal("Bool(true)")
	}
	if b, ok := r.Index(1).Bool(); b || !ok {
		t.Fatal("Bool(false)")
	}
	if i, ok := r.Index(2).Int64(); i != -42 || !ok {
		t.Fatalf("Int64 = %d, %v", i, ok)
	}
	if _, ok := r.Index(3).Int64(); ok {
		t.Fatal("Int64 accepted 2^63")
	}
	if f, ok := r.Index(4).Float64(); f != 30.5 || !ok || r.Index(4).Kind() != pyjson.KindFloat {
		t.Fatalf("Float64 = %v, %v", f, ok)
	}
	if f, _ := r.Index(5).Float64(); f < 1e308 {
		t.Fatalf("Float64(1e400) = %v, want +Inf", f)
	}
	if f, ok := r.Index(6).Float64(); f == f || !ok {
		t.Fatalf("Float64(NaN) = %v", f)
	}
	if _, ok := r.Index(7).Float64(); ok {
		t.Fatal("Float64 of a string")
	}
	var zero pyjson.Value
	if zero.Kind() != pyjson.KindInvalid || zero.Raw() != nil || zero.Len() != 0 || zero.Standard() {
		t.Fatal("zero Value is not empty")
	}
	if pyjson.KindObject.String() != "object" {
		t.Fatal("Kind.String")
	}
}

func TestStrAfterReuse(t *testing.T) {
	var d pyjson.Document
	for _, tt := range []struct{ body, want string }{
		{`{"event": "charge.success"}`, "charge.success"},
		{`{"x": 1, "event": "transfer.pending"}`, "transfer.pending"},
	} {
		if err := pyjson.ParseInto(&d, []byte(tt.body)); err != nil {
			t.Fatal(err)
		}
		v, _ := d.Root().Lookup("event")
		if s, ok := v.Str(); s != tt.want || !ok {
			t.Fatalf("Str = %q, %v; want %q", s, ok, tt.want)
		}
	}
}

func TestNumberText(t *testing.T) {
	d, err := pyjson.Parse([]byte(`[-0, 1.50, 1E400, 12345678901234567890, NaN, -Infinity, "7", null]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		text string
		ok   bool
	}{{"-0", true}, {"1.50", true}, {"1E400", true}, {"12345678901234567890", true}, {"", false}, {"", false}, {"", false}, {"", false}}
	i := 0
	for v := range d.Root().Elements() {
		text, ok := v.NumberText()
		if text != want[i].text || ok != want[i].ok {
			t.Errorf("element %d: NumberText = %q, %v; want %q, %v", i, text, ok, want[i].text, want[i].ok)
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("%d elements", i)
	}
}

func charge(tb testing.TB) []byte {
	tb.Helper()
	for _, v := range loadSenfenicoVectors(tb) {
		if v.Name == "charge.success with data as a JSON string" {
			return []byte(v.Body)
		}
	}
	tb.Fatal("no charge.success vector")
	return nil
}

// chargeData is the charge.success data object, as the bridge decodes it from
// the envelope's data string.
func chargeData(tb testing.TB) []byte {
	tb.Helper()
	d, err := pyjson.Parse(charge(tb))
	if err != nil {
		tb.Fatal(err)
	}
	v, _ := d.Root().Lookup("data")
	b, ok := v.AppendStr(nil)
	if !ok {
		tb.Fatal("data is not a string")
	}
	return b
}

func TestZeroAllocs(t *testing.T) {
	for _, body := range [][]byte{charge(t), chargeData(t)} {
		var d pyjson.Document
		buf := make([]byte, 0, 4096)
		parse := testing.AllocsPerRun(100, func() {
			if err := pyjson.ParseInto(&d, body); err != nil {
				t.Fatal(err)
			}
		})
		dump := testing.AllocsPerRun(100, func() { buf = d.AppendPython(buf[:0]) })
		lookup := testing.AllocsPerRun(100, func() {
			v, _ := d.Root().Lookup("reference")
			_, _ = v.Str()
		})
		if parse != 0 || dump != 0 || lookup != 0 {
			t.Fatalf("allocs per run: ParseInto %v, AppendPython %v, Lookup+Str %v; want 0", parse, dump, lookup)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{{"envelope", charge(b)}, {"data", chargeData(b)}} {
		b.Run(bc.name, func(b *testing.B) {
			var d pyjson.Document
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := pyjson.ParseInto(&d, bc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendPython(b *testing.B) {
	for _, bc := range []struct {
		name string
		body []byte
	}{{"envelope", charge(b)}, {"data", chargeData(b)}} {
		b.Run(bc.name, func(b *testing.B) {
			d, err := pyjson.Parse(bc.body)
			if err != nil {
				b.Fatal(err)
			}
			buf := d.AppendPython(nil)
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				buf = d.AppendPython(buf[:0])
			}
		})
	}
}
