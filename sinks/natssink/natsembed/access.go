package natsembed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Users of the embedded server.
const (
	// BridgeUser is the only user that may publish events and administer
	// streams: the bridge's own connection, in the server's global account,
	// which holds the JetStream streams.
	BridgeUser = "bridge"
	// OperatorUser has the bridge's rights, for the tools an operator runs
	// beside a running bridge (replay and redrive): its password is drawn
	// once and kept in OperatorFile, which only the owner of StoreDir may
	// read.
	OperatorUser = "operator"
	// DefaultReader is the reader Start's callers configure when the
	// operator names none (cmd's NATS_EMBEDDED_READERS default).
	DefaultReader = "reader"
	// BridgeInboxPrefix is the inbox prefix the bridge's connection uses
	// (nats.CustomInboxPrefix). Readers live in accounts of their own and
	// see none of the bridge's account but its events; the prefix keeps the
	// bridge's replies apart from the readers' answers ("_INBOX.") all the
	// same.
	BridgeInboxPrefix = "_BRIDGE_INBOX"
)

// Bounds on what one reader can make the server do. The guard (guard.go)
// enforces them on every JetStream API request a reader sends; the
// server-wide ones are also set as nats-server limits, so that the server
// refuses them even for a request the guard passed on.
const (
	// MaxReaders bounds the readers of one server: with
	// MaxConsumersPerReader each, they cannot reach MaxConsumersPerStream.
	MaxReaders = 32
	// MaxConsumersPerStream bounds the consumers on each stream of the
	// embedded server, readers' and the bridge's alike.
	MaxConsumersPerStream = 1000
	// MaxConsumersPerReader bounds the consumers one reader holds, over all
	// streams: each holds memory (and, when durable, files) in the bridge's
	// process.
	MaxConsumersPerReader = 25
	// MaxFilterSubjects bounds the filter subjects of one reader consumer.
	// nats-server checks every pair of a consumer's filters for overlap
	// (consumer.go, checkConsumerCfg): a create with 100,000 filters costs
	// 10^10 subject comparisons on one core, the 20 minutes a reader's
	// "filt-0" consumer took.
	MaxFilterSubjects = 16
	// MaxAPIRequestBytes bounds one JetStream API request of a reader
	// (a consumer configuration, a pull request).
	MaxAPIRequestBytes = 64 << 10
	// MaxRequestBatch bounds the messages one pull request asks for
	// (nats.go's Consume asks for 500 by default).
	MaxRequestBatch = 1000
	// MaxRequestExpires bounds how long one pull request waits; a pull
	// with no expiry is given this one.
	MaxRequestExpires = time.Minute
	// MaxWaitingPulls bounds the pull requests waiting on one consumer.
	MaxWaitingPulls = 64
	// MaxAckPending bounds the messages one consumer may have delivered and
	// unacknowledged: the server tracks each one in memory.
	MaxAckPending = 10000
)

// Request rates of one reader (tokens a second, burst). A reader over a
// rate has its request refused with an error it can read; its other
// requests and every other reader go on.
const (
	// apiRate covers every JetStream API request but pulls and acks.
	apiRate, apiBurst = 20, 50
	// pullRate covers pull requests (a client that consumes asks for a
	// batch at a time: nats.go's Consume about once a 250 messages).
	pullRate, pullBurst = 50, 100
	// ackRate covers acknowledgements, one a message read.
	ackRate, ackBurst = 10000, 20000
)

// Reader is one identity that reads from the embedded server: one per
// service, each in a NATS account of its own.
type Reader struct {
	// Name is the user name the reader logs in with: 1 to 32 letters,
	// digits and dashes. Every consumer the reader creates is named
	// Name + "_" + what it asked for.
	Name string
	// Password is the reader's password: at least 16 characters. Empty:
	// the one in the reader's credentials file (see ReadersDir).
	Password string
}

// minReaderPassword is the shortest password a reader may have.
const minReaderPassword = 16

// LogValue keeps the password out of logs.
func (r Reader) LogValue() slog.Value { return slog.StringValue(r.Name) }

// String keeps the password out of fmt's %v.
func (r Reader) String() string { return r.Name }

var readerName = regexp.MustCompile(`^[A-Za-z0-9-]{1,32}$`)

// ValidReaderName reports why name cannot be a reader's, or nil.
func ValidReaderName(name string) error {
	if !readerName.MatchString(name) {
		return fmt.Errorf("reader name %q: want 1 to 32 letters, digits and dashes", name)
	}
	if name == BridgeUser || name == OperatorUser {
		return fmt.Errorf("reader name %q is the bridge's own user", name)
	}
	return nil
}

// readerAccount names the account of reader name.
func readerAccount(name string) string { return "READER_" + name }

// The subjects, in the global account, that carry one reader's traffic to
// and from the guard (guard.go). The server sets the reader's name in
// them, not the reader:
//
//   - guardPrefix(name) + ".$JS.API.>" and ".$JS.ACK.>": what the reader
//     publishes on "$JS.API.>" and "$JS.ACK.>" in its own account, through
//     a stream export of its account imported with that prefix;
//   - answerPrefix(name) + ".>": answers to the reader, delivered in its
//     account on "_INBOX.>" (a mapped stream import), by the guard and by
//     JetStream itself for pulls, so that a pulled message keeps its
//     "$JS.ACK." reply and never passes through the guard;
//   - accountInfoSubject(name): "$JS.API.INFO", a service import, so that
//     the server does not answer it with "JetStream not enabled" for the
//     reader's own account.
func guardPrefix(name string) string        { return "_READER." + name }
func answerPrefix(name string) string       { return "_READER." + name + ".IN" }
func accountInfoSubject(name string) string { return "_READER." + name + ".INFO" }

// readerInboxPrefix is the inbox prefix readers' clients must use (every
// NATS client's default): the answers to a reader reach it on "_INBOX.>".
const readerInboxPrefix = "_INBOX."

// restrictAccess sets opts' users and accounts: the bridge with every right
// in the global account, and each reader in an account of its own. Clients
// without credentials are refused.
func restrictAccess(opts *server.Options, bridgePassword, operatorPassword string, readers []Reader) {
	opts.Users = []*server.User{{Username: BridgeUser, Password: bridgePassword}, {Username: OperatorUser, Password: operatorPassword}}
	for _, r := range readers {
		acc := server.NewAccount(readerAccount(r.Name))
		opts.Accounts = append(opts.Accounts, acc)
		opts.Users = append(opts.Users, &server.User{Username: r.Name, Password: r.Password, Account: acc})
	}
}

// wireReaders adds, on a server made from restrictAccess's options and not
// yet started, the exports and imports between the global account and
// each reader's: the reader sees the events published on eventSubjects
// (core subscriptions), and everything else goes through the guard. A
// reader can publish nothing into another account but its own JetStream
// requests and acks, which only the guard receives.
func wireReaders(ns *server.Server, readers []Reader, eventSubjects []string) error {
	global := ns.GlobalAccount()
	for _, r := range readers {
		acc, err := ns.LookupAccount(readerAccount(r.Name))
		if err != nil {
			return fmt.Errorf("natsembed: reader %s: %w", r.Name, err)
		}
		toGlobal, toReader := []*server.Account{global}, []*server.Account{acc}
		steps := []func() error{
			func() error { return acc.AddStreamExport("$JS.API.>", toGlobal) },
			func() error { return acc.AddStreamExport("$JS.ACK.>", toGlobal) },
			func() error { return global.AddStreamImport(acc, "$JS.API.>", guardPrefix(r.Name)) },
			func() error { return global.AddStreamImport(acc, "$JS.ACK.>", guardPrefix(r.Name)) },
			func() error { return global.AddStreamExport(answerPrefix(r.Name)+".>", toReader) },
			func() error {
				return acc.AddMappedStreamImport(global, answerPrefix(r.Name)+".>", readerInboxPrefix+">")
			},
			func() error { return global.AddServiceExport(accountInfoSubject(r.Name), toReader) },
			func() error { return acc.AddServiceImport(global, "$JS.API.INFO", accountInfoSubject(r.Name)) },
		}
		for _, subject := range eventSubjects {
			steps = append(steps,
				func() error { return global.AddStreamExport(subject, toReader) },
				func() error { return acc.AddStreamImport(global, subject, "") })
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("natsembed: reader %s: %w", r.Name, err)
			}
		}
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

// RandomPassword returns a new reader password: 256 random bits,
// hex-encoded.
func RandomPassword() (string, error) { return randomPassword() }
