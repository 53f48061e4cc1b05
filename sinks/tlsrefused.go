package sinks

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
)

// TLSRefused reports whether err says that a TLS handshake failed on a
// certificate, which a retry cannot fix: ours was refused by the broker
// (which says so in a TLS alert) or the broker's failed verification here.
//
// A handshake cut short is not final: a broker at its connection limit
// answers in plain text and hangs up, and a TLS proxy whose backend is
// still starting closes right after the handshake; both clear up on their
// own, like a broker that is not listening yet.
func TLSRefused(err error) bool {
	var verifyErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	// crypto/tls reports an alert the peer sent (it refused our certificate
	// or found none) as a net.OpError with this Op.
	var opErr *net.OpError
	remoteAlert := errors.As(err, &opErr) && opErr.Op == "remote error"
	return remoteAlert || errors.As(err, &verifyErr) || errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostnameErr) || errors.As(err, &invalidCert)
}
