package loadgen

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/webhook"
)

// Notification is one prebuilt delivery: the exact bytes Senfenico would post
// and their signature.
type Notification struct {
	// Body is the request body: {"event": ..., "data": "<JSON string>"} in
	// CPython's json.dumps layout.
	Body []byte
	// Signature is the X-Webhook-Hash value for Body.
	Signature string
	// Reference is data.reference, a fresh random UUID that makes the body
	// unique and lets a subscriber's messages be matched to it.
	Reference string
}

// dataTemplates holds, per event family, the data object as CPython's
// json.dumps writes it (", " and ": " separators), with %s for the reference,
// %d for the amount and %s for the status. The fields are those of the
// official SDKs' data classes, so the bodies pass the bridge's schemas and
// SCHEMA_VALIDATION=warn logs nothing for them.
var dataTemplates = map[string]string{
	"charge": `{"reference": "%s", "amount": %d, "fees": 30.5, "currency": "XOF", "transaction_date": "2024-06-01T10:00:00Z", ` +
		`"ip_address": "41.78.1.2", "status": "%s", "live_mode": true, "payment_method": "mobile_money", "provider": "orange_bf", ` +
		`"phone": "65000000", "cancelled_at": null, "cancellation_reason": null, "created_at": "2024-06-01T09:59:00Z", ` +
		`"updated_at": "2024-06-01T10:00:00Z", "confirmation_attempts": [{"ip_address": "41.78.1.2", ` +
		`"attempt_date": "2024-06-01T10:00:00Z", "confirmation_status": "confirmed"}]}`,
	"checkout": `{"email": "customer@mail.com", "reference": "%s", "charge_reference": null, "amount": %d, ` +
		`"success_url": "https://yourwebsite.com/", "cancel_url": "https://yourwebsite.com/", "phone": "", "provider": "", ` +
		`"live_mode": false, "created_at": null, "updated_at": null, "status": "%s"}`,
	"settlement": `{"reference": "%s", "amount": %d, "settlement_fees": 5.0, "currency": "XOF", "status": "%s", "live_mode": true, ` +
		`"created_at": "2024-06-02T08:00:00Z", "updated_at": "2024-06-02T08:00:00Z", "account_type": "mobile_money", ` +
		`"iban": null, "rib": null, "bank_name": null, "bank_address": null, "account_holder_name": null, ` +
		`"account_holder_address": null, "swift_bic_code": null, "provider": "orange_bf", "phone": "65000000", ` +
		`"usdt_wallet_address": null}`,
	"transfer": `{"reference": "%s", "amount": %d, "fees": 15.0, "currency": "XOF", "ip_address": "41.78.1.2", "status": "%s", ` +
		`"live_mode": false, "recipient_wallet": "moov_bf", "recipient_phone": "70000000", "created_at": "2024-06-03T12:00:00Z", ` +
		`"ext_id": "order-77"}`,
}

// Build returns n distinct notifications of event signed with key. The data
// object follows the event's family (charge, checkout, settlement, transfer;
// any other family gets charge fields); its status is the event's last token.
// Event must be printable ASCII without quotes or backslashes.
func Build(event, key string, n int) ([]Notification, error) {
	if strings.ContainsAny(event, "\"\\") || !printableASCII(event) {
		return nil, fmt.Errorf("%w: event %q must be printable ASCII without quotes or backslashes", ErrConfig, event)
	}
	family, _, _ := strings.Cut(event, ".")
	tmpl, ok := dataTemplates[family]
	if !ok {
		tmpl = dataTemplates["charge"]
	}
	status := event[strings.LastIndexByte(event, '.')+1:]
	out := make([]Notification, n)
	for i := range out {
		ref := newUUID()
		data := fmt.Sprintf(tmpl, ref, 1000+i%100000, status)
		body := make([]byte, 0, len(data)+64+len(event))
		body = append(body, `{"event": "`...)
		body = append(body, event...)
		body = append(body, `", "data": `...)
		body = appendPyString(body, data)
		body = append(body, '}')
		out[i] = Notification{Body: body, Signature: webhook.Sign(body, key), Reference: ref}
	}
	return out, nil
}

// appendPyString appends s as a JSON string the way json.dumps writes it.
// The templates are printable ASCII, so only quotes and backslashes need
// escaping.
func appendPyString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// newUUID returns a random (version 4) UUID, the form Senfenico's references
// take. crypto/rand.Read never fails (it crashes the program instead).
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
