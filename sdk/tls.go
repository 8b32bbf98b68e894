package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
)

// TLSOptions are the transport security options of every network driver,
// under the same keys in each driver's options section. A driver decodes
// them beside its own options (Section.Decode(&o, &t)) and builds its
// *tls.Config with ClientConfig.
//
// Verification of the server's certificate is always on unless
// tls_insecure_skip_verify is true, which Open logs as a warning.
type TLSOptions struct {
	// Enabled connects with TLS where the URL's scheme does not say so
	// (Kafka's broker list). Where it does (amqps://, rediss://, https://)
	// the scheme decides, and tls: true with a plain scheme is refused.
	Enabled bool `option:"tls"`
	// CAFile and CAPEM hold the certificates of the CAs that may sign the
	// server's certificate (a PEM bundle in a file, or the PEM text itself),
	// in place of the system's roots.
	CAFile string `option:"tls_ca_file"`
	CAPEM  string `option:"tls_ca_pem"`
	// CertFile and KeyFile (or CertPEM and KeyPEM) are the client's
	// certificate and private key, for servers that require one (mTLS).
	CertFile string `option:"tls_cert_file"`
	KeyFile  string `option:"tls_key_file"`
	CertPEM  string `option:"tls_cert_pem"`
	KeyPEM   string `option:"tls_key_pem"`
	// ServerName is the name the server's certificate must hold, when it is
	// not the host connected to.
	ServerName string `option:"tls_server_name"`
	// MinVersion is the oldest TLS version accepted: 1.2 or 1.3.
	MinVersion string `option:"tls_min_version" default:"1.2" oneof:"1.2|1.3"`
	// InsecureSkipVerify accepts any server certificate. Anyone on the path
	// can then read and change messages; it is meant for a test server.
	InsecureSkipVerify bool `option:"tls_insecure_skip_verify"`
}

// firstSet names the first tls_* key other than tls that is set.
func (o TLSOptions) firstSet() string {
	for _, f := range []struct {
		key string
		set bool
	}{
		{"tls_ca_file", o.CAFile != ""}, {"tls_ca_pem", o.CAPEM != ""},
		{"tls_cert_file", o.CertFile != ""}, {"tls_key_file", o.KeyFile != ""},
		{"tls_cert_pem", o.CertPEM != ""}, {"tls_key_pem", o.KeyPEM != ""},
		{"tls_server_name", o.ServerName != ""}, {"tls_min_version", o.MinVersion == "1.3"},
		{"tls_insecure_skip_verify", o.InsecureSkipVerify},
	} {
		if f.set {
			return f.key
		}
	}
	return ""
}

// ClientConfig returns the client TLS configuration the options describe,
// or nil when the driver connects without TLS. schemeTLS is nil for a
// driver whose URL does not say whether to use TLS (Enabled decides), and
// otherwise says whether its scheme does; plain names that scheme's TLS
// form for advice ("amqps://"). Every error is a *ConfigError naming the
// key; none holds a key's PEM text.
func (o TLSOptions) ClientConfig(cfg Config, schemeTLS *bool, tlsScheme string) (*tls.Config, error) {
	on := o.Enabled
	if schemeTLS != nil {
		if o.Enabled && !*schemeTLS {
			return nil, cfg.Invalid("options.tls", nil, "the URL's scheme connects without TLS; write %s in url instead of tls: true", tlsScheme)
		}
		on = *schemeTLS
	}
	if !on {
		if k := o.firstSet(); k != "" {
			how := "set tls: true"
			if schemeTLS != nil {
				how = "write " + tlsScheme + " in url"
			}
			return nil, cfg.Invalid("options."+k, nil, "%s is set but the connection does not use TLS; %s to connect with TLS", k, how)
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in, named plainly, warned about
	if o.MinVersion == "1.3" {
		c.MinVersion = tls.VersionTLS13
	}
	if o.CAFile != "" && o.CAPEM != "" {
		return nil, cfg.Invalid("options.tls_ca_pem", nil, "both tls_ca_file and tls_ca_pem are set; keep one")
	}
	ca, caKey := []byte(o.CAPEM), "options.tls_ca_pem"
	if o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, cfg.Invalid("options.tls_ca_file", err, "cannot read the CA bundle")
		}
		ca, caKey = b, "options.tls_ca_file"
	}
	if len(ca) > 0 {
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(ca) {
			return nil, cfg.Invalid(caKey, nil, "holds no PEM certificate (want one or more -----BEGIN CERTIFICATE----- blocks)")
		}
	}
	pair, err := o.clientCertificate(cfg)
	if err != nil {
		return nil, err
	}
	if pair != nil {
		c.Certificates = []tls.Certificate{*pair}
	}
	if o.InsecureSkipVerify {
		slog.Warn("messaging: TLS certificate verification is off (tls_insecure_skip_verify: true): anyone on the path can read and change messages; use tls_ca_file instead outside tests",
			"driver", cfg.Driver)
	}
	return c, nil
}

// clientCertificate loads the client's certificate and key, from files or
// PEM text, or returns nil when neither is set.
func (o TLSOptions) clientCertificate(cfg Config) (*tls.Certificate, error) {
	files, pems := o.CertFile != "" || o.KeyFile != "", o.CertPEM != "" || o.KeyPEM != ""
	switch {
	case files && pems:
		return nil, cfg.Invalid("options.tls_cert_pem", nil, "the client certificate is given both as files (tls_cert_file, tls_key_file) and as PEM (tls_cert_pem, tls_key_pem); keep one pair")
	case files && (o.CertFile == "" || o.KeyFile == ""):
		return nil, cfg.Invalid("options.tls_cert_file", nil, "a client certificate needs both tls_cert_file and tls_key_file")
	case pems && (o.CertPEM == "" || o.KeyPEM == ""):
		return nil, cfg.Invalid("options.tls_cert_pem", nil, "a client certificate needs both tls_cert_pem and tls_key_pem")
	case files:
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, cfg.Invalid("options.tls_cert_file", err, "cannot load the client certificate %s and key %s", o.CertFile, o.KeyFile)
		}
		return &pair, nil
	case pems:
		pair, err := tls.X509KeyPair([]byte(o.CertPEM), []byte(o.KeyPEM))
		if err != nil {
			return nil, cfg.Invalid("options.tls_cert_pem", errors.New(tlsPairProblem(err)), "cannot load the client certificate and key from tls_cert_pem and tls_key_pem")
		}
		return &pair, nil
	}
	return nil, nil
}

// tlsPairProblem describes a failed X509KeyPair without the PEM text.
func tlsPairProblem(err error) string {
	var perr x509.CertificateInvalidError
	if errors.As(err, &perr) {
		return "the certificate is not valid"
	}
	return "the certificate and key do not parse as PEM or do not match"
}

// ExplainTLS returns err with advice added when it is a TLS failure that
// a setting can fix (the server's certificate not trusted or not for this
// host, a client certificate required or refused, a server that does not
// speak TLS), and err itself otherwise. c is the configuration the client
// connected with (nil without TLS): a TLS 1.2 server that wants a client
// certificate and got none says "bad certificate", which means "none" only
// when c held none. Drivers wrap connection errors at Open with it.
func ExplainTLS(err error, c *tls.Config) error {
	if err == nil {
		return nil
	}
	if advice := tlsAdvice(err, c != nil && (len(c.Certificates) > 0 || c.GetClientCertificate != nil)); advice != "" {
		return &tlsProblem{err: err, advice: advice}
	}
	return err
}

type tlsProblem struct {
	err    error
	advice string
}

func (p *tlsProblem) Error() string { return p.err.Error() + "; " + p.advice }
func (p *tlsProblem) Unwrap() error { return p.err }

// TLS alerts a server sends about the client's certificate (RFC 8446 6.2).
const (
	alertHandshakeFailure     = 40
	alertBadCertificate       = 42
	alertCertificateExpired   = 45
	alertCertificateUnknown   = 46
	alertUnknownCA            = 48
	alertCertificateRequired  = 116
	adviceClientCertificate   = "the server requires a client certificate: set tls_cert_file and tls_key_file (or tls_cert_pem and tls_key_pem)"
	adviceRefusedCertificate  = "the server refused the client certificate (tls_cert_file or tls_cert_pem): it must be signed by a CA the server trusts, be valid now, and be meant for client authentication"
	adviceUntrustedServerCert = "the server's certificate is not signed by a CA this client trusts: set tls_ca_file (or tls_ca_pem) to the CA that signed it"
)

func tlsAdvice(err error, sentCertificate bool) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return adviceUntrustedServerCert
	case errors.As(err, &hostname):
		return fmt.Sprintf("the server's certificate is not for %q: connect by a name it holds, or set tls_server_name to one", hostname.Host)
	case errors.As(err, &invalid):
		return "the server's certificate is not valid (" + invalid.Error() + ")"
	case errors.As(err, &record):
		return "the server did not answer in TLS: check that the port is its TLS listener, or connect without TLS"
	}
	if alert, ok := remoteAlert(err); ok {
		switch alert {
		case alertCertificateRequired:
			if sentCertificate {
				// The client sends no certificate that a CA the server
				// names did not sign.
				return "the server requires a client certificate signed by a CA it trusts, and the one set (tls_cert_file or tls_cert_pem) is not signed by any of them"
			}
			return adviceClientCertificate
		case alertBadCertificate, alertCertificateExpired, alertCertificateUnknown, alertUnknownCA:
			if !sentCertificate {
				return adviceClientCertificate
			}
			return adviceRefusedCertificate
		case alertHandshakeFailure:
			if !sentCertificate {
				return adviceClientCertificate + ", or it accepts no TLS version this client offers (tls_min_version)"
			}
			return "the server ended the TLS handshake: it may require a client certificate (tls_cert_file, tls_key_file), or accept no TLS version this client offers (tls_min_version)"
		}
	}
	return ""
}

// remoteAlert returns the alert a TLS peer sent, which crypto/tls reports
// as a *net.OpError "remote error" holding its unexported alert type (or,
// on QUIC, a tls.AlertError).
func remoteAlert(err error) (uint8, bool) {
	var a tls.AlertError
	if errors.As(err, &a) {
		return uint8(a), true
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	if v := reflect.ValueOf(op.Err); v.Kind() == reflect.Uint8 && v.Type().PkgPath() == "crypto/tls" {
		return uint8(v.Uint()), true
	}
	return 0, false
}
