package schemas_test

import (
	"errors"
	"fmt"

	"github.com/senfenico-bridge/senfenico-bridge/schemas"
)

func ExampleValidator_Validate() {
	v, err := schemas.New()
	if err != nil {
		panic(err)
	}
	body := []byte(`{"event": "transfer.success", "data": {"reference": "8d116ece-1738-f7d9-3d9c-172411e20b8f", "amount": "1500", "live_mode": "false"}}`)
	err = v.Validate("transfer.success", body)
	var verr *schemas.ValidationError
	if errors.As(err, &verr) {
		for _, reason := range verr.Reasons() {
			fmt.Println(reason)
		}
	}
	fmt.Println(errors.Is(err, schemas.ErrInvalid))
	// Unordered output:
	// data.amount: want integer, got string
	// data.live_mode: want boolean, got string
	// true
}
