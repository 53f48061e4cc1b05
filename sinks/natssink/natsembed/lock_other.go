//go:build !unix

package natsembed

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked by another process")

// lockFile does nothing where flock does not exist: the bridge is built
// for Linux; other systems run it for development only.
func lockFile(*os.File) error { return nil }
