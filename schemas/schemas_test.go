package schemas_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/senfenico-bridge/senfenico-bridge/integration/vectors"
	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

// chargeData is the charge.success data of the shared vectors.
const chargeData = `{"reference": "9531985d-5d9d-c9f8-1818-e811892f902b", "amount": 2000, "fees": 30.5, "currency": "XOF", "transaction_date": "2024-06-01T10:00:00Z", "ip_address": "41.78.1.2", "status": "success", "live_mode": true, "payment_method": "mobile_money", "provider": "orange_bf", "phone": "65000000", "cancelled_at": null, "cancellation_reason": null, "created_at": "2024-06-01T09:59:00Z", "updated_at": "2024-06-01T10:00:00Z", "confirmation_attempts": [{"ip_address": "41.78.1.2", "attempt_date": "2024-06-01T10:00:00Z", "confirmation_status": "confirmed"}]}`

const checkoutData = `{"email": "customer@mail.com", "reference": "6513270e-269e-0d37-f2a7-4de452e6b438", "charge_reference": null, "amount": 1000, "success_url": "https://yourwebsite.com/", "cancel_url": "https://yourwebsite.com/", "phone": "", "provider": "", "live_mode": false, "created_at": null, "updated_at": null, "status": "pending"}`

const settlementData = `{"reference": "6b0d549b-6f03-675a-1600-a35a099950d8", "amount": 500, "settlement_fees": 5.0, "currency": "XOF", "status": "success", "live_mode": true, "iban": null}`

const transferData = `{"reference": "8d116ece-1738-f7d9-3d9c-172411e20b8f", "amount": 1500, "fees": 15.0, "currency": "XOF", "live_mode": false, "ext_id": "order-77"}`

func newValidator(t testing.TB) *schemas.Validator {
	t.Helper()
	v, err := schemas.New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// publishedBody builds the body the bridge publishes for event and data.
func publishedBody(event, data string) []byte {
	ev, _ := json.Marshal(event)
	return []byte(`{"event": ` + string(ev) + `, "data": ` + data + `}`)
}

// withField returns data with field set to the raw JSON value, or removed
// when value is empty.
func withField(t *testing.T, data, field, value string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("sample data: %v", err)
	}
	if value == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(out)
}

func TestVectorsPass(t *testing.T) {
	v := newValidator(t)
	routable := 0
	for _, vec := range vectors.Load().Vectors {
		if vec.Event == "" {
			continue
		}
		routable++
		t.Run(vec.Name, func(t *testing.T) {
			var req struct {
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal([]byte(vec.Body), &req); err != nil {
				t.Fatal(err)
			}
			data := string(req.Data)
			var s string
			if json.Unmarshal(req.Data, &s) == nil {
				data = s
			}
			if err := v.Validate(vec.Event, publishedBody(req.Event, data)); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	if routable < 6 {
		t.Fatalf("only %d routable vectors found", routable)
	}
}

func TestValidate(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name   string
		event  string
		body   []byte
		reason string // a substring of one reason; empty means valid
	}{
		{name: "charge valid", event: "charge.success", body: publishedBody("charge.success", chargeData)},
		{name: "checkout valid", event: "checkout.pending", body: publishedBody("checkout.pending", checkoutData)},
		{name: "settlement valid", event: "settlement.success", body: publishedBody("settlement.success", settlementData)},
		{name: "transfer valid", event: "transfer.success", body: publishedBody("transfer.success", transferData)},
		{name: "transfer without optional ext_id", event: "transfer.success", body: publishedBody("transfer.success", withField(t, transferData, "ext_id", ""))},
		{name: "new status of a known family", event: "charge.refunded", body: publishedBody("charge.refunded", chargeData)},
		{name: "unknown family, envelope only", event: "payout.success", body: publishedBody("payout.success", `{"anything": [1, "x"]}`)},
		{name: "extra unknown fields", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "new_field", `{"nested": true}`))},
		{name: "extra envelope field", event: "charge.success", body: []byte(`{"event": "charge.success", "data": ` + chargeData + `, "x": 1}`)},
		{name: "null string", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "currency", "null"))},
		{name: "integer fees", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "fees", "30"))},
		{name: "empty event uses the body's", event: "", body: publishedBody("charge.success", withField(t, chargeData, "amount", `"2000"`)), reason: "data.amount: want integer, got string"},

		{name: "amount as string", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "amount", `"2000"`)), reason: "data.amount: want integer, got string"},
		{name: "amount fractional", event: "checkout.success", body: publishedBody("checkout.success", withField(t, checkoutData, "amount", `10.5`)), reason: "data.amount: want integer, got number"},
		{name: "amount null", event: "transfer.success", body: publishedBody("transfer.success", withField(t, transferData, "amount", `null`)), reason: "data.amount: want integer, got null"},
		{name: "live_mode as string", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "live_mode", `"true"`)), reason: "data.live_mode: want boolean, got string"},
		{name: "reference missing", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "reference", "")), reason: "data.reference: missing"},
		{name: "reference null", event: "settlement.success", body: publishedBody("settlement.success", withField(t, settlementData, "reference", "null")), reason: "data.reference: want string, got null"},
		{name: "reference not uuid-shaped", event: "checkout.success", body: publishedBody("checkout.success", withField(t, checkoutData, "reference", `"order-1"`)), reason: "data.reference: does not match the expected pattern"},
		{name: "confirmation_attempts as object", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "confirmation_attempts", `{"ip_address": "1.2.3.4"}`)), reason: "data.confirmation_attempts: want array, got object"},
		{name: "confirmation attempt item not object", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "confirmation_attempts", `["x"]`)), reason: "data.confirmation_attempts[0]: want object, got string"},
		{name: "confirmation attempt field type", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "confirmation_attempts", `[{"attempt_date": 5}]`)), reason: "data.confirmation_attempts[0].attempt_date: want null or string, got number"},
		{name: "fees as string", event: "charge.success", body: publishedBody("charge.success", withField(t, chargeData, "fees", `"30.5"`)), reason: "data.fees: want number, got string"},
		{name: "settlement_fees as bool", event: "settlement.success", body: publishedBody("settlement.success", withField(t, settlementData, "settlement_fees", `true`)), reason: "data.settlement_fees: want number, got boolean"},
		{name: "email as number", event: "checkout.success", body: publishedBody("checkout.success", withField(t, checkoutData, "email", `1`)), reason: "data.email: want null or string, got number"},
		{name: "data as string", event: "charge.success", body: publishedBody("charge.success", `"{}"`), reason: "data: want object, got string"},
		{name: "data missing", event: "charge.success", body: []byte(`{"event": "charge.success"}`), reason: "data: missing"},
		{name: "event missing", event: "charge.success", body: []byte(`{"data": {}}`), reason: "event: missing"},
		{name: "event not routable", event: "", body: publishedBody("charge..success", `{}`), reason: "event: does not match the expected pattern"},
		{name: "event too long", event: "", body: publishedBody(strings.Repeat("a", 250), `{}`), reason: "event: longer than 249 characters"},
		{name: "event differs from type", event: "charge.failed", body: publishedBody("charge.success", chargeData), reason: "event: differs from the message's event type"},
		{name: "body not an object", event: "charge.success", body: []byte(`[1]`), reason: "body: want object, got array"},
		{name: "body not JSON", event: "charge.success", body: []byte(`{"event": `), reason: "body: not a single JSON value"},
		{name: "trailing data", event: "charge.success", body: append(publishedBody("charge.success", chargeData), " {}"...), reason: "body: not a single JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(tt.event, tt.body)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			var verr *schemas.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %T, want *ValidationError", err)
			}
			reasons := verr.Reasons()
			found := false
			for _, r := range reasons {
				found = found || strings.Contains(r, tt.reason)
				assertPrintable(t, r)
			}
			if !found {
				t.Fatalf("reasons %q, want one containing %q", reasons, tt.reason)
			}
		})
	}
}

func assertPrintable(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			t.Fatalf("reason %q has a non-printable character", s)
		}
	}
}

func TestReasonsNeverQuoteValues(t *testing.T) {
	v := newValidator(t)
	const secret = "jane.doe+secret@example.com"
	body := publishedBody("checkout.success", withField(t, withField(t, checkoutData, "reference", `"`+secret+`"`), "amount", `"`+secret+`"`))
	err := v.Validate("checkout.success", body)
	if err == nil {
		t.Fatal("Validate passed a bad body")
	}
	if strings.Contains(err.Error(), "jane") {
		t.Fatalf("error quotes a value: %v", err)
	}
}

func TestReasonsBounded(t *testing.T) {
	v := newValidator(t)
	items := strings.TrimSuffix(strings.Repeat(`"x", `, 1000), ", ")
	err := v.Validate("charge.success", publishedBody("charge.success", withField(t, chargeData, "confirmation_attempts", "["+items+"]")))
	var verr *schemas.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	if n := len(verr.Reasons()); n > 11 {
		t.Fatalf("%d reasons, want at most 11", n)
	}
	if last := verr.Reasons()[len(verr.Reasons())-1]; last != "and 990 more" {
		t.Fatalf("last reason %q", last)
	}
}

func TestConcurrentValidate(t *testing.T) {
	v := newValidator(t)
	good := publishedBody("charge.success", chargeData)
	bad := publishedBody("charge.success", withField(t, chargeData, "amount", `"1"`))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := v.Validate("charge.success", good); err != nil {
					t.Errorf("good body: %v", err)
					return
				}
				if err := v.Validate("charge.success", bad); err == nil {
					t.Errorf("goroutine %d: bad body passed", i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestNames(t *testing.T) {
	got := strings.Join(schemas.Names(), ",")
	if want := "charge,checkout,envelope,settlement,transfer"; got != want {
		t.Fatalf("Names = %s, want %s", got, want)
	}
}

func TestSchemaFilesDeclareIDAndTitle(t *testing.T) {
	for _, name := range schemas.Names() {
		t.Run(name, func(t *testing.T) {
			raw, err := schemas.Files.ReadFile(name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Schema      string `json:"$schema"`
				ID          string `json:"$id"`
				Title       string `json:"title"`
				Description string `json:"description"`
			}
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema = %q", doc.Schema)
			}
			if doc.ID != schemas.BaseURL+name+".json" {
				t.Errorf("$id = %q", doc.ID)
			}
			if doc.Title == "" || doc.Description == "" {
				t.Error("title or description missing")
			}
		})
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(schemas.Handler())
	t.Cleanup(srv.Close)
	for _, name := range schemas.Names() {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/schemas/" + name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			want, _ := schemas.Files.ReadFile(name + ".json")
			if resp.StatusCode != http.StatusOK || string(got) != string(want) {
				t.Fatalf("status %d, body equal %t", resp.StatusCode, string(got) == string(want))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/schema+json" {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
	tests := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{name: "unknown name", method: http.MethodGet, path: "/schemas/payout.json", status: http.StatusNotFound},
		{name: "name without extension", method: http.MethodGet, path: "/schemas/charge", status: http.StatusNotFound},
		{name: "directory", method: http.MethodGet, path: "/schemas/", status: http.StatusNotFound},
		{name: "dot-dot", method: http.MethodGet, path: "/schemas/../schemas.go", status: http.StatusNotFound},
		{name: "encoded dot-dot", method: http.MethodGet, path: "/schemas/%2e%2e%2fschemas.go", status: http.StatusNotFound},
		{name: "encoded slash", method: http.MethodGet, path: "/schemas/..%2Fgo.mod", status: http.StatusNotFound},
		{name: "nested", method: http.MethodGet, path: "/schemas/testdata/senfenico-vectors.json", status: http.StatusNotFound},
		{name: "outside prefix", method: http.MethodGet, path: "/charge.json", status: http.StatusNotFound},
		{name: "head", method: http.MethodHead, path: "/schemas/charge.json", status: http.StatusOK},
		{name: "post", method: http.MethodPost, path: "/schemas/charge.json", status: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sent through the handler directly: an HTTP client would
			// clean the path before it reaches the server.
			req := httptest.NewRequest(tt.method, "http://x"+tt.path, nil)
			rec := httptest.NewRecorder()
			schemas.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.status)
			}
		})
	}
}

func BenchmarkValidateChargeSuccess(b *testing.B) {
	v := newValidator(b)
	body := publishedBody("charge.success", chargeData)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.Validate("charge.success", body); err != nil {
			b.Fatal(err)
		}
	}
}
