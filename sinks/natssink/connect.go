package natssink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/senfenico-bridge/senfenico-bridge/sinks"
)

// options are the nats.go options of the sink's connection.
func options(c Config, log *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
		// No reconnect buffer: a publish while disconnected must fail, never
		// sit in a buffer that a lost connection would discard after the
		// bridge answered 200.
		nats.ReconnectBufSize(-1),
		// Detect a dead TCP connection within a minute rather than the
		// default's four.
		nats.PingInterval(20 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			} else {
				log.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			log.Info("nats connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("nats async error", "err", err)
		}),
	}
	auth, err := AuthOptions(c)
	if err != nil {
		return nil, err
	}
	return append(opts, auth...), nil
}

// AuthOptions are the nats.go options that authenticate a connection as
// Config says (credentials file, NKey seed, token or user and password; CA
// and client certificate), followed by Config.Options: for other
// connections that must log in as the sink does (replay's reader). The
// error wraps ErrConfig and a *sinks.FieldError when the NKey seed cannot
// be read.
func AuthOptions(c Config) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, &sinks.FieldError{Field: "NKeySeedFile", Reason: err.Error()})
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	return append(opts, c.Options...), nil
}

// connect retries the initial connection until ctx ends; nats.go's own
// RetryOnFailedConnect would return a connection that is not up yet.
func connect(ctx context.Context, cfg Config, opts []nats.Option) (*nats.Conn, error) {
	for {
		nc, err := nats.Connect(cfg.URL, opts...)
		if err == nil {
			return nc, nil
		}
		if permanent(err) {
			// Retrying cannot fix credentials or certificates.
			return nil, fmt.Errorf("natssink: connect %s: %w: %w", sinks.RedactURLs(cfg.URL), sinks.ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("natssink: connect %s: %w: %w (gave up: %w)", sinks.RedactURLs(cfg.URL), sinks.ErrUnavailable, err, ctx.Err())
		case <-time.After(cfg.ReconnectWait):
		}
	}
}

// permanent reports whether a connection error will recur on every try: the
// server refused the credentials, a certificate failed verification on
// either side, or one side wants TLS and the other does not.
func permanent(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) ||
		sinks.TLSRefused(err)
}
