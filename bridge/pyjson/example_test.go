package pyjson_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
)

// The Python SDK's signature rule: sha256(json.dumps(json.loads(body)) + key).
// The same Document then gives the event to route.
func Example() {
	body := []byte(`{"event":"charge.success","data":{"amount":2000,"fees":30.50,"note":"caf\u00e9 \ud83d\ude00"}}`)
	key := "secret"

	d, err := pyjson.Parse(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	payload := d.AppendPython(nil)
	sum := sha256.Sum256(append(payload, key...))
	fmt.Println(string(payload))
	fmt.Println(hex.EncodeToString(sum[:])[:16])

	event, _ := d.Root().Lookup("event")
	name, _ := event.Str()
	fmt.Println(name, d.Root().Standard())
	// Output:
	// {"event": "charge.success", "data": {"amount": 2000, "fees": 30.5, "note": "caf\u00e9 \ud83d\ude00"}}
	// 5006fe6f962a20cd
	// charge.success true
}
