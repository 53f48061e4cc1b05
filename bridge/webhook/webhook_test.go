package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
)

const key = "9e191505-9637-4c2b-a55e-da813b882732"

func newDecoder(t testing.TB, keys ...string) *Decoder {
	t.Helper()
	d, err := NewDecoder(keys)
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

func TestSharedVectors(t *testing.T) {
	for _, v := range vectors.Load().Vectors {
		t.Run(v.Name, func(t *testing.T) {
			header := ""
			if v.Header != nil {
				header = *v.Header
			}
			n, err := newDecoder(t, v.Key).Decode([]byte(v.Body), header)
			switch {
			case !v.ValidSignature:
				if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMissingSignature) {
					t.Fatalf("forged vector: err %v, want a signature error", err)
				}
			case v.ExpectStatus == 400:
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
			default:
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				wantRule := RulePythonJSON
				if v.PHPSDKAccepts {
					wantRule = RuleRawBody
				}
				if n.Rule != wantRule || n.Event != v.Event || !n.EventValid || n.Problem != "" {
					t.Fatalf("got %+v, want rule %s event %s", n, wantRule, v.Event)
				}
				if v.Reference != "" && n.Reference != v.Reference {
					t.Fatalf("reference %q, want %q", n.Reference, v.Reference)
				}
				if !json.Valid(n.Data) || !bytes.HasPrefix(n.Data, []byte("{")) {
					t.Fatalf("data is not a JSON object: %s", n.Data)
				}
			}
		})
	}
}

// pythonCase is one case of ../pyjson/testdata/python_vectors.json, written
// by gen_python_vectors.py with the machine's CPython.
type pythonCase struct {
	Name  string `json:"name"`
	Body  string `json:"body"`
	OK    bool   `json:"ok"`
	Dumps string `json:"dumps"`
}

func loadPythonCases(t *testing.T) []pythonCase {
	t.Helper()
	raw, err := os.ReadFile("../pyjson/testdata/python_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []pythonCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 100 {
		t.Fatalf("only %d CPython cases", len(f.Cases))
	}
	return f.Cases
}

// TestPythonRule signs each CPython case the way the Python SDK checks it
// (over json.dumps(json.loads(body)), as CPython printed it) and sends the
// original body: the signature must hold exactly when CPython accepted the
// body.
func TestPythonRule(t *testing.T) {
	d := newDecoder(t, "old-key", key)
	accepted := 0
	for _, c := range loadPythonCases(t) {
		body, err := base64.StdEncoding.DecodeString(c.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !c.OK {
			// No Python-rule signature exists for a body CPython refuses, so
			// any signature but the raw body's must fail.
			sig := Sign(append(body[:len(body):len(body)], ' '), key)
			if _, err := d.Decode(body, sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s: CPython rejects the body, Decode said %v", c.Name, err)
			}
			continue
		}
		dumps, err := base64.StdEncoding.DecodeString(c.Dumps)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pyjson.Parse(body); errors.Is(err, pyjson.ErrUnsupportedEncoding) {
			// json.loads(bytes) also reads UTF-16 and UTF-32; Senfenico sends
			// UTF-8, and the bridge refuses the others (README, Verification).
			if _, err := d.Decode(body, Sign(dumps, key)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s: UTF-16/32 body, Decode said %v", c.Name, err)
			}
			continue
		}
		if _, err := pyjson.Parse(body); errors.Is(err, pyjson.ErrDepth) {
			// CPython's limit is its recursion limit less the caller's stack
			// depth, which no verifier can reproduce; the bridge stops at
			// pyjson.MaxDepth (PHP's json_decode default) and refuses more.
			if _, err := d.Decode(body, Sign(body, "x")); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s: too deep, Decode said %v", c.Name, err)
			}
			continue
		}
		n, err := d.Decode(body, Sign(dumps, key))
		if errors.Is(err, ErrBadSignature) || errors.Is(err, ErrMissingSignature) {
			t.Errorf("%s: Python-rule signature refused: %v", c.Name, err)
			continue
		}
		if err == nil {
			accepted++
			if !bytes.Equal(body, dumps) && n.Rule != RulePythonJSON {
				t.Errorf("%s: rule %s, want python_json", c.Name, n.Rule)
			}
		}
		if _, err := d.Decode(body, Sign(dumps, "not-a-key")); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: signature under an unknown key: %v", c.Name, err)
		}
	}
	if accepted == 0 {
		t.Fatal("no CPython case was a routable envelope; the test proves nothing")
	}
}

func TestSignatureForms(t *testing.T) {
	body := []byte(`{"event": "charge.success", "data": {"reference": "r"}}`)
	good := Sign(body, key)
	tests := []struct {
		name    string
		header  string
		wantErr error
	}{
		{"lower-case hex", good, nil},
		{"upper-case hex", strings.ToUpper(good), nil},
		{"missing", "", ErrMissingSignature},
		{"one nibble off", good[:63] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", good[63])+1)%16]), ErrBadSignature},
		{"too long", good + "00", ErrBadSignature},
		{"too short", good[:62], ErrBadSignature},
		{"non-hex", strings.Repeat("g", 64), ErrBadSignature},
		{"sha256 of the body alone", Sign(body, ""), ErrBadSignature},
		{"prefix key", Sign(append([]byte(key), body...), ""), ErrBadSignature},
	}
	d := newDecoder(t, key)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := d.Decode(body, tt.header); !errors.Is(err, tt.wantErr) && !(tt.wantErr == nil && err == nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNotificationID(t *testing.T) {
	a := []byte(`{"event": "charge.success", "data": {"reference": "r1"}}`)
	b := []byte(`{"event": "charge.success", "data": {"reference": "r2"}}`)
	d := newDecoder(t, "k1", "k2")
	decode := func(body []byte, key string) Notification {
		t.Helper()
		n, err := d.Decode(body, Sign(body, key))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if decode(a, "k1").ID != decode(a, "k2").ID {
		t.Fatal("the ID depends on the key: a rotated key would duplicate resends")
	}
	if decode(a, "k1").ID == decode(b, "k1").ID {
		t.Fatal("two notifications share an ID")
	}
	if id := decode(a, "k1").ID; len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("ID %q is not 32 lowercase hex digits", id)
	}
}

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantEvent   string
		wantValid   bool
		wantData    string
		wantRef     string
		wantProblem bool
	}{
		{"data object", `{"event": "a.b", "data": {"reference": "r"}}`, "a.b", true, `{"reference": "r"}`, "r", false},
		{"data string", `{"event": "a.b", "data": "{\"reference\": \"r\"}"}`, "a.b", true, `{"reference": "r"}`, "r", false},
		{"escaped event", `{"event": "a.\u0062", "data": {}}`, "a.b", true, `{}`, "", false},
		{"repeated event: last wins", `{"event": "x.y", "data": {}, "event": "a.b"}`, "a.b", true, `{}`, "", false},
		{"repeated data: last wins", `{"event": "a.b", "data": {"reference": "1"}, "data": {"reference": "2"}}`, "a.b", true, `{"reference": "2"}`, "2", false},
		{"reference not a string", `{"event": "a.b", "data": {"reference": 7}}`, "a.b", true, `{"reference": 7}`, "", false},
		{"data array", `{"event": "a.b", "data": [1]}`, "a.b", true, `[1]`, "", false},
		{"lone surrogate event", `{"event": "a\ud800", "data": {}}`, `a\ud800`, false, `{}`, "", false},
		{"data string not JSON", `{"event": "a.b", "data": "nope"}`, "a.b", true, "", "", true},
		{"data Infinity", `{"event": "a.b", "data": {"x": Infinity}}`, "a.b", true, "", "", true},
		{"data string with NaN", `{"event": "a.b", "data": "{\"x\": NaN}"}`, "a.b", true, "", "", true},
		{"data string lone surrogate", `{"event": "a.b", "data": "\ud800"}`, "a.b", true, "", "", true},
		{"no data", `{"event": "a.b"}`, "a.b", true, "", "", true},
		{"data float that overflows", `{"event": "a.b", "data": {"x": 1e400}}`, "a.b", true, "", "", true},
		{"repeated key in data: first position, last value", `{"event": "a.b", "data": {"amount": 999999999, "reference": "r", "amount": 1000}}`, "a.b", true, `{"amount": 1000, "reference": "r"}`, "r", false},
		{"repeated key in data string", `{"event": "a.b", "data": "{\"amount\": 999999999, \"amount\": 1000}"}`, "a.b", true, `{"amount": 1000}`, "", false},
		{"data re-serialised as json.dumps writes it", "{\"event\": \"a.b\", \"data\": {\"fees\":30.50,\n \"n\":\"caf\u00e9 \\u0041\", \"e\": 1E2}}", "a.b", true, `{"fees": 30.5, "n": "caf\u00e9 A", "e": 100.0}`, "", false},
	}
	d := newDecoder(t, key)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := d.Decode([]byte(tt.body), Sign([]byte(tt.body), key))
			if err != nil {
				t.Fatal(err)
			}
			if n.Event != tt.wantEvent || n.EventValid != tt.wantValid || string(n.Data) != tt.wantData ||
				n.Reference != tt.wantRef || (n.Problem != "") != tt.wantProblem {
				t.Fatalf("got event %q valid %v data %q ref %q problem %q", n.Event, n.EventValid, n.Data, n.Reference, n.Problem)
			}
		})
	}
}

// TestIDFollowsTheDocument: every byte form of one document that verifies
// gets the ID of the document, whichever rule accepted it, so a replayed
// variant of a captured delivery is a duplicate.
func TestIDFollowsTheDocument(t *testing.T) {
	canonical := `{"event": "charge.success", "data": {"reference": "r-1", "amount": 1000, "fees": 30.5}}`
	variants := []struct {
		name string
		body string
	}{
		{"as signed", canonical},
		{"no white space", `{"event":"charge.success","data":{"reference":"r-1","amount":1000,"fees":30.5}}`},
		{"white space and newlines", "{ \"event\" : \"charge.success\",\n\t\"data\": {\"reference\": \"r-1\", \"amount\": 1000, \"fees\": 30.5} }\r\n"},
		{"UTF-8 BOM", "\ufeff" + canonical},
		{"escaped letters", `{"event": "charge.\u0073uccess", "data": {"reference": "\u0072-1", "amount": 1000, "fees": 30.5}}`},
		{"other number spelling", `{"event": "charge.success", "data": {"reference": "r-1", "amount": 1000, "fees": 3.050e1}}`},
		{"repeated key, last value", `{"event": "charge.success", "data": {"reference": "r-1", "amount": 5, "fees": 30.5, "amount": 1000}}`},
		{"repeated event", `{"event": "x.y", "data": {"reference": "r-1", "amount": 1000, "fees": 30.5}, "event": "charge.success"}`},
	}
	d := newDecoder(t, key)
	want := DocumentID([]byte(canonical))
	var wantData string
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			// Signed as Senfenico signs the document it sent, which the
			// Python rule accepts in any byte form.
			n, err := d.Decode([]byte(v.body), Sign([]byte(canonical), key))
			if err != nil {
				t.Fatal(err)
			}
			if n.ID != want {
				t.Fatalf("ID %s, want %s: a byte variant of one document is a new notification", n.ID, want)
			}
			if wantData == "" {
				wantData = string(n.Data)
			}
			if string(n.Data) != wantData {
				t.Fatalf("data %s, want %s", n.Data, wantData)
			}
		})
	}
	// Signed over its own bytes, a variant is accepted by the raw-body rule
	// and still names the document.
	raw := variants[1].body
	n, err := d.Decode([]byte(raw), Sign([]byte(raw), key))
	if err != nil || n.Rule != RuleRawBody || n.ID != want {
		t.Fatalf("raw rule: rule %v ID %s err %v, want ID %s", n.Rule, n.ID, err, want)
	}
	other := `{"event": "charge.success", "data": {"reference": "r-1", "amount": 1001, "fees": 30.5}}`
	if n, _ := d.Decode([]byte(other), Sign([]byte(other), key)); n.ID == want {
		t.Fatal("two documents share an ID")
	}
}

// TestSenfenicoDataKeepsItsBytes: Senfenico writes data with json.dumps, so
// re-serialising it changes no byte of what the bridge published before.
func TestSenfenicoDataKeepsItsBytes(t *testing.T) {
	for _, v := range vectors.Load().Vectors {
		if v.ExpectStatus != 200 || !strings.Contains(v.Name, "as a JSON string") {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			var env struct {
				Data string `json:"data"`
			}
			if err := json.Unmarshal([]byte(v.Body), &env); err != nil {
				t.Fatal(err)
			}
			n, err := newDecoder(t, v.Key).Decode([]byte(v.Body), *v.Header)
			if err != nil {
				t.Fatal(err)
			}
			if string(n.Data) != env.Data {
				t.Fatalf("data\n%s\nwant the bytes Senfenico sent\n%s", n.Data, env.Data)
			}
			if n.ID != DocumentID([]byte(v.Body)) {
				t.Fatal("a body already in json.dumps form is not its own canonical form")
			}
		})
	}
}

func TestKeysStayOutOfLogs(t *testing.T) {
	d := newDecoder(t, "first-secret", "second-secret")
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("x", "decoder", d)
	text := buf.String() + fmt.Sprint(d) + fmt.Sprintf("%v %+v %s", d, d, d)
	if strings.Contains(text, "secret") {
		t.Fatalf("a key leaked: %s", text)
	}
}

func TestNewDecoderRefusesEmptyKeys(t *testing.T) {
	for _, keys := range [][]string{nil, {}, {""}, {"ok", "  "}} {
		if _, err := NewDecoder(keys); !errors.Is(err, ErrNoKeys) {
			t.Errorf("NewDecoder(%q) = %v, want ErrNoKeys", keys, err)
		}
	}
}

// FuzzDecode feeds arbitrary bodies, signed and unsigned: Decode must never
// panic, a body signed under the raw rule must never be refused for its
// signature, and an unsigned one never accepted.
func FuzzDecode(f *testing.F) {
	for _, v := range vectors.Load().Vectors {
		f.Add([]byte(v.Body), true)
	}
	f.Add([]byte(`{"event": "a.b", "data": "{\"x\": [1, 2.5e300, \"\\ud800\"]}"}`), true)
	f.Add([]byte(`{"event": "a.b", "data": {"x": NaN}}`), false)
	f.Add([]byte("{\"event\": \"a\xed\xa0\x80\", \"data\": {\"x\": 1, \"x\": 2}}"), true)
	f.Add([]byte("\xef\xbb\xbf{\"event\":\"a.b\",\"data\":\"{\\\"y\\\":1e400}\"}"), true)
	// Found by fuzzing in CI: a value a repeated key replaced (NaN, raw
	// surrogates) made the data non-standard although the document Python
	// reads, and its canonical form, hold neither.
	f.Add([]byte(`{"event":"a","data":{"":NaN,"":0}}`), true)
	f.Add([]byte("{\"event\":\"a\",\"data\":{\"\":\"\xed\xa0\x80\",\"\":0}}"), true)
	f.Add([]byte("{\"event\":\"a\",\"data\":{\"x\":\"\xed\xa0\x80\"}}"), true)
	d := newDecoder(f, key)
	f.Fuzz(func(t *testing.T, body []byte, sign bool) {
		sig := strings.Repeat("0", 64)
		if sign {
			sig = Sign(body, key)
		}
		n, err := d.Decode(body, sig)
		if sign && (errors.Is(err, ErrBadSignature) || errors.Is(err, ErrMissingSignature)) {
			t.Fatalf("raw-rule signature refused: %v", err)
		}
		if !sign && err == nil {
			t.Fatalf("unsigned body accepted: %+v", n)
		}
		if err == nil && n.Problem == "" && !json.Valid(n.Data) {
			t.Fatalf("publishable data is not valid JSON: %q", n.Data)
		}
		if err != nil {
			return
		}
		checkCanonicalForm(t, d, body, n)
		if n.Problem == "" {
			checkUnambiguous(t, n.Data)
		}
	})
}

// checkCanonicalForm asserts that the canonical form of a verified body,
// json.dumps(json.loads(body)), sent as its own bytes, is the same
// notification: same ID, same data, same event.
func checkCanonicalForm(t *testing.T, d *Decoder, body []byte, n Notification) {
	t.Helper()
	doc, err := pyjson.Parse(body)
	if err != nil {
		t.Fatalf("a verified body does not parse: %v", err)
	}
	canon := doc.AppendPython(nil)
	if n.ID != DocumentID(canon) {
		t.Fatalf("ID %s is not the canonical form's %s", n.ID, DocumentID(canon))
	}
	m, err := d.Decode(canon, Sign(canon, key))
	if err != nil {
		t.Fatalf("canonical form of a verified body refused: %v", err)
	}
	if m.ID != n.ID || string(m.Data) != string(n.Data) || m.Event != n.Event || m.Problem != n.Problem {
		t.Fatalf("canonical form decodes to ID %s data %q, body to ID %s data %q", m.ID, m.Data, n.ID, n.Data)
	}
}

// checkUnambiguous asserts that published data is one document for every
// parser: standard JSON, and json.dumps's own output (so no repeated key,
// which json.dumps would have dropped).
func checkUnambiguous(t *testing.T, data []byte) {
	t.Helper()
	doc, err := pyjson.Parse(data)
	if err != nil || !doc.Root().Standard() || !json.Valid(data) {
		t.Fatalf("published data %q is not standard JSON (%v)", data, err)
	}
	if again := doc.AppendPython(nil); string(again) != string(data) {
		t.Fatalf("published data %q re-parses to another document %q", data, again)
	}
}

func BenchmarkDecode(b *testing.B) {
	var body []byte
	for _, v := range vectors.Load().Vectors {
		if v.Name == "charge.success with data as a JSON string" {
			body = []byte(v.Body)
		}
	}
	// The same notification with other white space (same key order): only
	// the Python rule accepts it, so Decode parses and re-encodes it.
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		b.Fatal(err)
	}
	benches := []struct {
		name    string
		body    []byte
		sig     string
		wantErr error
	}{
		{"raw_body_rule", body, Sign(body, key), nil},
		// Signed as sent but not in json.dumps form: the ID needs the dump.
		{"raw_body_rule_other_form", compact.Bytes(), Sign(compact.Bytes(), key), nil},
		{"python_json_rule", compact.Bytes(), Sign(body, key), nil},
		{"bad_signature", body, Sign(body, "wrong"), ErrBadSignature},
	}
	d := newDecoder(b, key)
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			// Each case measures the path it names, or it fails.
			if _, err := d.Decode(bb.body, bb.sig); !errors.Is(err, bb.wantErr) || (err == nil) != (bb.wantErr == nil) {
				b.Fatalf("Decode = %v, want %v", err, bb.wantErr)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.body)))
			for b.Loop() {
				d.Decode(bb.body, bb.sig)
			}
		})
	}
}

// TestLargeBodyLeavesNoParseTree sends the body that costs the parser most
// per byte (an array of a million zeros, unsigned, so parsed for the Python
// rule) and checks that its parse tree is garbage once Decode returned: a
// decoder that pooled it would keep some 16 MiB alive per such request.
func TestLargeBodyLeavesNoParseTree(t *testing.T) {
	d := newDecoder(t, key)
	body := append([]byte("["), bytes.Repeat([]byte("0,"), 1<<19)...)
	body = append(body, '0', ']')
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := d.Decode(body, Sign([]byte("other"), key)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("unsigned body: got %v, want ErrBadSignature", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4<<20 {
		t.Fatalf("heap grew by %d MiB after one Decode of a 1 MiB body and a GC: its parse tree is still held", grown>>20)
	}
	runtime.KeepAlive(body)
}
