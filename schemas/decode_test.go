package schemas

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// decodeCases are bodies on both sides of every line decode draws between
// its pyjson path and the library's decoder.
var decodeCases = []string{
	`{"event": "charge.success", "data": {"reference": "r", "amount": 5000, "fee": 1.5e2, "ok": true, "none": null, "tags": ["a", 1, [], {}]}}`,
	`{"a": 1, "a": 2}`,
	`{"\u00e9t\u00e9": "\ud83d\ude00", "k\"ey": "tab\there"}`,
	`{"lone": "\ud800"}`,
	`{"n": NaN}`,
	`{"n": -Infinity}`,
	`[12345678901234567890123456789, -0, 0.0, 1E400, -1e-400]`,
	"\xef\xbb\xbf{}",
	"{\"bad\": \"\xff\"}",
	`{"a": 1} extra`,
	` "just a string" `,
	`{"deep": ` + string(bytes.Repeat([]byte("["), 600)) + string(bytes.Repeat([]byte("]"), 600)) + `}`,
	``,
	`{`,
}

// TestDecodeMatchesLibrary: whichever path decode takes, its result is the
// library's own decoding of the body.
func TestDecodeMatchesLibrary(t *testing.T) {
	for _, body := range decodeCases {
		checkDecode(t, []byte(body))
	}
}

func FuzzDecodeMatchesLibrary(f *testing.F) {
	for _, body := range decodeCases {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		checkDecode(t, []byte(body))
	})
}

func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	got, gotErr := decode(body)
	want, wantErr := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: decode error %v, library error %v", body, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decode gave %#v, the library %#v", body, got, want)
	}
}
