// Package tlsconfig builds the mutual-TLS settings every Switchyard role
// uses: loaded from PEM files (--tls-cert, --tls-key, --tls-ca), or
// generated on the spot for a development cluster (`switchyard certs`,
// and `switchyard up`'s ephemeral certificates). Every certificate serves
// both ends: each role is a server and a client.
package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Pair is a server side and a client side of one identity.
type Pair struct {
	Server *tls.Config // requires and verifies client certificates
	Client *tls.Config // presents the certificate, verifies servers
}

// Load reads a certificate, its key and the cluster CA. All empty means
// no TLS (nil, nil); some but not all set is an error.
func Load(certFile, keyFile, caFile string) (*Pair, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("tls: --tls-cert, --tls-key and --tls-ca go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return NewPair(cert, ca)
}

// NewPair builds the configs for cert, trusting the CAs in caPEM.
func NewPair(cert tls.Certificate, caPEM []byte) (*Pair, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("tls: the CA file holds no certificate")
	}
	return &Pair{
		Server: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13},
		Client: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS13},
	}, nil
}

// CA is a development certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA makes a CA valid for a year.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"switchyard"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Issue signs a certificate for name, valid for hosts (IP addresses or DNS
// names; localhost and 127.0.0.1 are always included), for both server and
// client use. It returns the certificate and key in PEM.
func (ca *CA) Issue(name string, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"switchyard"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range append([]string{"localhost", "127.0.0.1"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// Ephemeral makes a throwaway CA and one certificate for hosts, and
// returns the configs (what `switchyard up` uses by default).
func Ephemeral(hosts []string) (*Pair, *CA, error) {
	ca, err := NewCA("switchyard ephemeral CA")
	if err != nil {
		return nil, nil, err
	}
	certPEM, keyPEM, err := ca.Issue("switchyard", hosts)
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	p, err := NewPair(cert, ca.CertPEM)
	return p, ca, err
}

// Roles are the certificates WriteDev issues.
var Roles = []string{"router", "coordinator", "expert-node", "etcd", "client"}

// WriteDev writes a development CA (ca.pem, ca-key.pem) and a certificate
// and key per role (ROLE.pem, ROLE-key.pem) into dir, valid for hosts.
func WriteDev(dir string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := NewCA("switchyard development CA")
	if err != nil {
		return err
	}
	caKey, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return err
	}
	files := map[string][]byte{"ca.pem": ca.CertPEM, "ca-key.pem": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKey})}
	for _, role := range Roles {
		c, k, err := ca.Issue(role, hosts)
		if err != nil {
			return err
		}
		files[role+".pem"], files[role+"-key.pem"] = c, k
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ServerOption is the gRPC server option for p (plaintext when p is nil).
func (p *Pair) ServerOption() grpc.ServerOption {
	if p == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.Creds(credentials.NewTLS(p.Server))
}

// DialOption is the gRPC dial option for p (plaintext when p is nil).
func (p *Pair) DialOption() grpc.DialOption {
	if p == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(p.Client))
}

// ClientConfig is the client side of p, or nil.
func (p *Pair) ClientConfig() *tls.Config {
	if p == nil {
		return nil
	}
	return p.Client
}
