package natsembed

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

// OperatorFile returns the path of the operator's credentials file in
// storeDir: the URL OperatorUser connects with, for the tools an operator
// runs beside the bridge (replay). Written like a reader's.
func OperatorFile(storeDir string) string {
	return filepath.Join(storeDir, "operator.url")
}

// ErrNoReaderFile means a reader's (or the operator's) credentials file
// does not exist (the embedded server has not run with that reader yet).
var ErrNoReaderFile = errors.New("natsembed: no credentials file for this reader")

// ReadReaderFile returns the URL in reader name's credentials file under
// storeDir, and the user and password in it. The error wraps
// ErrNoReaderFile when there is no such file.
func ReadReaderFile(storeDir, name string) (rawURL, user, password string, err error) {
	return readURLFile(ReaderFile(storeDir, name))
}

// ReadOperatorFile is ReadReaderFile for the operator's file.
func ReadOperatorFile(storeDir string) (rawURL, user, password string, err error) {
	return readURLFile(OperatorFile(storeDir))
}

func readURLFile(path string) (rawURL, user, password string, err error) {
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
		password, isNew, err := filePassword(ReaderFile(storeDir, r.Name))
		if err != nil {
			return nil, nil, err
		}
		if isNew {
			created = append(created, r.Name)
		}
		out[i].Password = password
	}
	return out, created, nil
}

// filePassword returns the password in the credentials file at path, or a
// new one when there is no file (isNew).
func filePassword(path string) (password string, isNew bool, err error) {
	_, _, password, err = readURLFile(path)
	if errors.Is(err, ErrNoReaderFile) {
		password, err = randomPassword()
		return password, true, err
	}
	if err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	if len(password) < minReaderPassword {
		return "", false, fmt.Errorf("%w: %s: the password is shorter than %d characters", ErrStoreDir, path, minReaderPassword)
	}
	return password, false, nil
}

// writeURLFile writes user's credentials file at path, unless it holds
// that URL already; it reports whether it wrote.
func writeURLFile(path, user, password, host string) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	u := url.URL{Scheme: "nats", User: url.UserPassword(user, password), Host: host}
	content := []byte(u.String() + "\n")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
		return false, nil
	}
	// Written aside and renamed, so that a client never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		return false, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("%w: %w", ErrStoreDir, err)
	}
	return true, nil
}

// writeReaderFiles writes the credentials file of every reader whose
// password lives in StoreDir (configured without one), with clientURL's
// host and port, and says which files are new.
func writeReaderFiles(storeDir, clientURL string, configured, resolved []Reader, created []string, log *slog.Logger) error {
	host := strings.TrimPrefix(clientURL, "nats://")
	for i, r := range configured {
		if r.Password != "" {
			continue
		}
		path := ReaderFile(storeDir, r.Name)
		if _, err := writeURLFile(path, r.Name, resolved[i].Password, host); err != nil {
			return err
		}
		if slices.Contains(created, r.Name) {
			log.Info("new reader credentials: a service connects with the URL in this file",
				slog.String("reader", r.Name), slog.String("file", path))
		}
	}
	return nil
}
