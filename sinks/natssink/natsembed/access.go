package natsembed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// Users of the embedded server.
const (
	// BridgeUser is the only user that may publish events and administer
	// streams: the bridge's own connection.
	BridgeUser = "bridge"
	// ReaderUser is everyone else: clients without credentials, or those
	// that log in with EmbeddedConfig.ReaderPassword.
	ReaderUser = "reader"
	// BridgeInboxPrefix is the inbox prefix the bridge's connection must use
	// (nats.CustomInboxPrefix). Readers may publish replies on "_INBOX.>"
	// and can see the reply subject of every publish, so with the default
	// prefix a reader could answer the bridge's publish with a forged PubAck
	// before the stream does; it may not publish here.
	BridgeInboxPrefix = "_BRIDGE_INBOX"
)

// MaxConsumersPerStream bounds the consumers on each stream of the
// embedded server, readers' and the bridge's alike.
const MaxConsumersPerStream = 1000

// readerPublishAllowed is everything a reader may publish: replies to its
// own requests, and the JetStream API calls that read streams or create,
// read, use and delete consumers. Everything else, events and the stream
// administration API ($JS.API.STREAM.CREATE, UPDATE, DELETE, PURGE,
// MSG.DELETE...) included, is refused by the server.
//
// What the clients in the README need: nats.go's jetstream package (the
// Go subscriber's durable pull consumer, the load tool's ordered consumer,
// tail's core subscription), nats-py (add_consumer, pull_subscribe_bind) and
// @nats-io/jetstream (consumers.get, consume), and the nats CLI's sub,
// stream info and consumer commands.
var readerPublishAllowed = []string{
	"_INBOX.>",
	"$JS.API.INFO",
	"$JS.API.STREAM.INFO.>",
	"$JS.API.STREAM.NAMES",
	"$JS.API.STREAM.LIST",
	"$JS.API.STREAM.MSG.GET.>",
	"$JS.API.DIRECT.GET.>",
	"$JS.API.CONSUMER.CREATE.>",
	"$JS.API.CONSUMER.DURABLE.CREATE.>",
	"$JS.API.CONSUMER.INFO.>",
	"$JS.API.CONSUMER.LIST.>",
	"$JS.API.CONSUMER.NAMES.>",
	"$JS.API.CONSUMER.MSG.NEXT.>",
	"$JS.API.CONSUMER.DELETE.>",
	"$JS.ACK.>",
	"$JS.FC.>",
}

// restrictAccess sets opts' users: the bridge with every right, readers
// with the rights above; anonymous clients are readers unless
// readerPassword is set.
func restrictAccess(opts *server.Options, bridgePassword, readerPassword string) error {
	if readerPassword == "" {
		// Nobody logs in as the reader by name then; an unguessable password
		// keeps it that way.
		var err error
		if readerPassword, err = randomPassword(); err != nil {
			return err
		}
		opts.NoAuthUser = ReaderUser
	}
	opts.Users = []*server.User{
		{Username: BridgeUser, Password: bridgePassword},
		{Username: ReaderUser, Password: readerPassword, Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: readerPublishAllowed},
		}},
	}
	return nil
}

// randomPassword returns 256 random bits, hex-encoded.
func randomPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("natsembed: password: %w", err)
	}
	return hex.EncodeToString(b), nil
}
