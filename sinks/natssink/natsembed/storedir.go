package natsembed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// lockFileName is the file in StoreDir whose lock marks the store as taken.
const lockFileName = "senfenico-bridge.lock"

// lockStoreDir makes sure dir is a writable directory and takes an exclusive
// lock on it for as long as the returned file stays open. The lock goes
// with the process: a crashed bridge leaves no stale lock behind.
func lockStoreDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrStoreDir, dir)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("%w: %s", ErrStoreDirLocked, dir)
		}
		return nil, fmt.Errorf("%w: lock %s: %w", ErrStoreDir, f.Name(), err)
	}
	// Writing the process id proves the store takes writes (a read-only
	// mount can still open an existing file) and tells an operator who
	// holds the lock.
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	return f, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// storeWritable reports whether dir takes a write of size bytes now: a
// file is written, synced and removed.
func storeWritable(dir string, size int) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, size)); err != nil {
		return err
	}
	return f.Sync()
}
