package schemas_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidate checks that no body makes Validate panic and that every
// reason stays one printable ASCII line.
func FuzzValidate(f *testing.F) {
	f.Add("charge.success", string(publishedBody("charge.success", chargeData)))
	f.Add("checkout.pending", string(publishedBody("checkout.pending", checkoutData)))
	f.Add("", `{"event": "x\u00e9", "data": {"\u0000": 1}}`)
	paths, _ := filepath.Glob("testdata/fuzz/FuzzValidate/*")
	if len(paths) == 0 {
		f.Fatal("seed corpus testdata/fuzz/FuzzValidate is empty")
	}
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, event, body string) {
		err := v.Validate(event, []byte(body))
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Fatalf("error %q is not printable ASCII", msg)
		}
	})
}
