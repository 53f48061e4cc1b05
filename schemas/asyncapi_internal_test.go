package schemas

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestConvertSchema: the rewriting of a JSON Schema file into the AsyncAPI
// document's components, on what the embedded files use today and on what
// a later edit could bring.
func TestConvertSchema(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   string // the converted schema as JSON, without the root's externalDocs
		err    string // a substring of the error; empty means none
	}{
		{
			name:   "$schema and $id go, title and order stay",
			schema: `{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://senfenico-bridge.dev/schemas/charge.json", "type": "object", "title": "t"}`,
			want:   `{"type":"object","title":"t"}`,
		},
		{
			name:   "$defs move out, refs follow",
			schema: `{"$id": "x", "properties": {"a": {"items": {"$ref": "#/$defs/confirmation_attempt"}}}, "$defs": {"confirmation_attempt": {}}}`,
			want:   `{"properties":{"a":{"items":{"$ref":"#/components/schemas/ChargeConfirmationAttempt"}}}}`,
		},
		{
			name:   "refs to other files",
			schema: `{"$id": "x", "allOf": [{"$ref": "envelope.json"}, {"$ref": "https://senfenico-bridge.dev/schemas/checkout.json"}], "not": {"$ref": "transfer.json#/$defs/x"}}`,
			want:   `{"allOf":[{"$ref":"#/components/schemas/Event"},{"$ref":"#/components/schemas/CheckoutData"}],"not":{"$ref":"#/components/schemas/TransferX"}}`,
		},
		{
			name:   "property names are not keywords",
			schema: `{"$id": "x", "properties": {"$id": {"type": "string"}, "prefixItems": {}, "$ref": {"const": "#/$defs/x"}}}`,
			want:   `{"properties":{"$id":{"type":"string"},"prefixItems":{},"$ref":{"const":"#/$defs/x"}}}`,
		},
		{
			name:   "values are not schemas",
			schema: `{"$id": "x", "enum": [{"$ref": "y"}], "examples": [{"prefixItems": 1}], "default": {"$id": "z"}}`,
			want:   `{"enum":[{"$ref":"y"}],"examples":[{"prefixItems":1}],"default":{"$id":"z"}}`,
		},
		{name: "ref inside a schema", schema: `{"$id": "x", "items": {"$ref": "#/properties/a"}}`, err: `points inside a schema`},
		{name: "ref to another site", schema: `{"$id": "x", "items": {"$ref": "https://example.com/a.json"}}`, err: `not a schema file of this package`},
		{name: "ref to a file that is not here", schema: `{"$id": "x", "items": {"$ref": "payout.json"}}`, err: `not a schema file of this package`},
		{name: "prefixItems", schema: `{"$id": "x", "properties": {"a": {"prefixItems": [{}]}}}`, err: `keyword prefixItems`},
		{name: "unevaluatedProperties", schema: `{"$id": "x", "unevaluatedProperties": false}`, err: `keyword unevaluatedProperties`},
		{name: "nested $id", schema: `{"$id": "x", "items": {"$id": "y"}}`, err: `keyword $id`},
		{name: "nested $defs", schema: `{"$id": "x", "not": {"$defs": {}}}`, err: `keyword $defs`},
		{name: "no $id", schema: `{"type": "object"}`, err: `has no $id`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeOrdered([]byte(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			got, err := convertSchema("charge", v, true)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("convertSchema = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := got.(object)
			if docs, ok := o.get("externalDocs"); !ok || docs.(object)[1].key != "url" {
				t.Fatalf("no externalDocs url in %v", o)
			}
			js, err := json.Marshal(o.without("externalDocs"))
			if err != nil {
				t.Fatal(err)
			}
			if string(js) != tt.want {
				t.Fatalf("got  %s\nwant %s", js, tt.want)
			}
		})
	}
}

// TestDecodeOrdered keeps the members in file order, numbers as written.
func TestDecodeOrdered(t *testing.T) {
	v, err := decodeOrdered([]byte(`{"z": 1.50, "a": [true, null, {"b": "c"}], "m": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(v)
	if want := `{"z":1.50,"a":[true,null,{"b":"c"}],"m":{}}`; string(js) != want {
		t.Fatalf("got %s, want %s", js, want)
	}
	for _, bad := range []string{`{"a": 1} {}`, `{"a": }`, ``} {
		if _, err := decodeOrdered([]byte(bad)); err == nil {
			t.Errorf("decodeOrdered(%q) passed", bad)
		}
	}
}
