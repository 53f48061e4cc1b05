package natsembed

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ReadersDir is the directory, inside StoreDir, that holds the credentials
// of readers configured without a password: one file a reader, named
// after it with ".url", holding the URL it connects with
// (nats://name:password@host:port). The password is drawn once, when the
// file is first written, and kept across restarts; Start rewrites the host
// and port. Only the owner may read the files.
const ReadersDir = "readers"

// ReaderFile returns the path of reader name's credentials file in storeDir.
func ReaderFile(storeDir, name string) string {
	return filepath.Join(storeDir, ReadersDir, name+".url")
}

// ErrNoReaderFile means a reader's credentials file does not exist (the
// embedded server has not run with that reader yet).
var ErrNoReaderFile = errors.New("natsembed: no credentials file for this reader")

// ReadReaderFile returns the URL in reader name's credentials file under
// storeDir, and the user and password in it. The error wraps
// ErrNoReaderFile when there is no such file.
func ReadReaderFile(storeDir, name string) (rawURL, user, password string, err error) {
	path := ReaderFile(storeDir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", "", fmt.Errorf("%w: %s", ErrNoReaderFile, path)
	}
	if err != nil {
		return "", "", "", fmt.Errorf("natsembed: %w", err)
	}
	rawURL = strings.TrimSpace(string(data))
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return "", "", "", fmt.Errorf("natsembed: %s holds no nats://user:password@host:port URL", path)
	}
	password, _ = u.User.Password()
	return rawURL, u.User.Username(), password, nil
}

// resolveReaderPasswords gives every reader without a password the one in
// its credentials file, drawing and writing a new one when there is none.
// It returns the readers whose file it created.
func resolveReaderPasswords(storeDir string, readers []Reader) ([]Reader, []string, error) {
	out := make([]Reader, len(readers))
	var created []string
	for i, r := range readers {
		out[i] = r
		if r.Password != "" {
			continue
		}
		_, _, password, err := ReadReaderFile(storeDir, r.Name)
		if errors.Is(err, ErrNoReaderFile) {
			if password, err = randomPassword(); err != nil {
				return nil, nil, err
			}
			created = append(created, r.Name)
		} else if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrStoreDir, err)
		}
		if len(password) < minReaderPassword {
			return nil, nil, fmt.Errorf("%w: %s: the password is shorter than %d characters", ErrStoreDir, ReaderFile(storeDir, r.Name), minReaderPassword)
		}
		out[i].Password = password
	}
	return out, created, nil
}

// writeReaderFiles writes the credentials file of every reader whose
// password lives in StoreDir (configured without one), with clientURL's
// host and port, and says which files are new.
func writeReaderFiles(storeDir, clientURL string, configured, resolved []Reader, created []string, log *slog.Logger) error {
	host := strings.TrimPrefix(clientURL, "nats://")
	dir := filepath.Join(storeDir, ReadersDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	for i, r := range configured {
		if r.Password != "" {
			continue
		}
		u := url.URL{Scheme: "nats", User: url.UserPassword(r.Name, resolved[i].Password), Host: host}
		content := []byte(u.String() + "\n")
		path := ReaderFile(storeDir, r.Name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			continue
		}
		// Written aside and renamed, so that a reader never reads half a
		// file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, content, 0o600); err != nil {
			return fmt.Errorf("%w: %w", ErrStoreDir, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("%w: %w", ErrStoreDir, err)
		}
		for _, name := range created {
			if name == r.Name {
				log.Info("new reader credentials: a service connects with the URL in this file",
					slog.String("reader", r.Name), slog.String("file", path))
			}
		}
	}
	return nil
}
