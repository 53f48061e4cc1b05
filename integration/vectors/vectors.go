// Package vectors holds Senfenico's signed test deliveries
// (senfenico-vectors.json, built the way Senfenico builds them and re-checked
// against its official Python SDK) for the tests of every package.
package vectors

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

//go:embed senfenico-vectors.json
var raw []byte

// Vector is one delivery: the exact body and X-Webhook-Hash to send, and what
// the bridge must do with it.
type Vector struct {
	Name string `json:"name"`
	// Body is the request body, byte for byte.
	Body string `json:"body"`
	// Header is the X-Webhook-Hash value; nil means the header is absent.
	Header *string `json:"header"`
	Key    string  `json:"key"`
	// ExpectStatus is the HTTP status the bridge must answer.
	ExpectStatus     int  `json:"expect_status"`
	ValidSignature   bool `json:"valid_signature"`
	PHPSDKAccepts    bool `json:"php_sdk_accepts"`
	PythonSDKAccepts bool `json:"python_sdk_accepts"`
	// Event, Subject and Reference are set for routable events.
	Event     string `json:"event"`
	Subject   string `json:"subject"`
	Reference string `json:"reference"`
}

// File is the whole vectors file.
type File struct {
	Key     string   `json:"key"`
	Vectors []Vector `json:"vectors"`
}

// Load decodes the embedded file. It panics on a malformed file, which is a
// bug in the repository, not a test outcome.
func Load() File {
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		panic(fmt.Sprintf("vectors: senfenico-vectors.json: %v", err))
	}
	return f
}
