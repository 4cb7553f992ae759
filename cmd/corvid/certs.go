package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/corvidml/corvid/server/tlsconfig"
)

const certsUsage = `Usage: corvid certs [--out DIR] [--hosts NAME,...] [--client IDENTITY]...

Creates what mutual TLS needs for development, in DIR:

  ca.pem, ca-key.pem                 a CA, valid 10 years; an existing one in
                                     DIR is reused, never overwritten
  server.pem, server-key.pem         the server's certificate for localhost,
                                     127.0.0.1, ::1 and --hosts, valid 1 year
  client-ID.pem, client-ID-key.pem   one per --client ID: common name ID and
                                     URI SAN spiffe://corvid.local/ID, valid 1 year

Keys are ECDSA P-256 with mode 0600. Server and client certificates are
issued anew on each run and replace the files atomically, so a running
server picks them up. Then prints the config that serves with them.

Flags:
`

// spiffeTrustDomain is the trust domain of the client identities `corvid
// certs` issues.
const spiffeTrustDomain = "corvid.local"

var (
	// identityPattern keeps a client identity usable as a file name and as
	// a SPIFFE path segment.
	identityPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// dnsNamePattern accepts host names, optionally with one leading wildcard label.
	dnsNamePattern = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

type certsArgs struct {
	out     string
	dns     []string // server DNS SANs, localhost first
	ips     []net.IP // server IP SANs, 127.0.0.1 and ::1 first
	clients []string // identities, in order, without duplicates
}

// listFlag collects a flag given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseCertsArgs(args []string, stderr io.Writer) (certsArgs, error) {
	a := certsArgs{
		dns: []string{"localhost"},
		ips: []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback},
	}
	var hosts string
	var clients listFlag
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.out, "out", "certs", "`DIR` to write the files to (created if missing)")
	fs.StringVar(&hosts, "hosts", "", "comma-separated extra `NAMES` (host names or IP addresses) for the server certificate")
	fs.Var(&clients, "client", "issue a client certificate for `IDENTITY` (repeatable)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), certsUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return a, err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return a, fmt.Errorf("certs takes no arguments, got %q", fs.Args())
	}
	if a.out == "" {
		return a, errors.New("certs: --out is empty, want a folder")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(a.ips, ip.Equal) {
				a.ips = append(a.ips, ip)
			}
			continue
		}
		if len(h) > 253 || !dnsNamePattern.MatchString(h) {
			return a, fmt.Errorf("certs: --hosts %q is neither a host name nor an IP address", h)
		}
		if h = strings.ToLower(h); !slices.Contains(a.dns, h) {
			a.dns = append(a.dns, h)
		}
	}
	for _, id := range clients {
		if !identityPattern.MatchString(id) {
			return a, fmt.Errorf("certs: --client %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
		}
		if !slices.Contains(a.clients, id) {
			a.clients = append(a.clients, id)
		}
	}
	return a, nil
}

// runCerts runs `corvid certs`: see certsUsage.
func runCerts(args []string, stdout, stderr io.Writer) error {
	a, err := parseCertsArgs(args, stderr)
	if err != nil {
		return err
	}
	return writeCerts(a, stdout)
}

func writeCerts(a certsArgs, stdout io.Writer) error {
	dir, err := filepath.Abs(a.out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := func(name string) string { return filepath.Join(dir, name) }

	ca, reused, err := loadOrCreateCA(path("ca.pem"), path("ca-key.pem"))
	if err != nil {
		return err
	}
	if reused {
		fmt.Fprintf(stdout, "kept    %s (existing CA %q, expires %s)\n", path("ca.pem"), ca.Cert.Subject.CommonName, day(ca.Cert.NotAfter))
	} else {
		fmt.Fprintf(stdout, "wrote   %s, ca-key.pem (new CA %q, expires %s)\n", path("ca.pem"), ca.Cert.Subject.CommonName, day(ca.Cert.NotAfter))
	}

	server, err := ca.Issue(tlsconfig.Leaf{CommonName: a.dns[0], DNSNames: a.dns, IPAddresses: a.ips, Server: true})
	if err != nil {
		return fmt.Errorf("issue server certificate: %w", err)
	}
	if err := server.WriteFiles(path("server.pem"), path("server-key.pem")); err != nil {
		return err
	}
	names := slices.Clone(a.dns)
	for _, ip := range a.ips {
		names = append(names, ip.String())
	}
	fmt.Fprintf(stdout, "wrote   %s, server-key.pem (server %s, expires %s)\n", path("server.pem"), strings.Join(names, " "), day(server.Cert.NotAfter))

	for _, id := range a.clients {
		uri := &url.URL{Scheme: "spiffe", Host: spiffeTrustDomain, Path: "/" + id}
		kp, err := ca.Issue(tlsconfig.Leaf{CommonName: id, URIs: []*url.URL{uri}, Client: true})
		if err != nil {
			return fmt.Errorf("issue client certificate %s: %w", id, err)
		}
		cert, key := path("client-"+id+".pem"), path("client-"+id+"-key.pem")
		if err := kp.WriteFiles(cert, key); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote   %s, %s (client %s, expires %s)\n", cert, filepath.Base(key), uri, day(kp.Cert.NotAfter))
	}

	fmt.Fprintf(stdout, `
Serve with mutual TLS: put this in the file given to corvid serve --config.

tls:
  cert_file: %s
  key_file: %s
  client_ca_file: %s
  client_auth: require
`, yamlString(path("server.pem")), yamlString(path("server-key.pem")), yamlString(path("ca.pem")))
	if len(a.clients) == 0 {
		fmt.Fprintln(stdout, "\nAdd --client IDENTITY to issue client certificates.")
		return nil
	}
	id := a.clients[0]
	fmt.Fprintf(stdout, `
Call it as %s:

  curl --cacert %s --cert %s --key %s https://localhost:8501/v1/models
`, id, shellString(path("ca.pem")), shellString(path("client-"+id+".pem")), shellString(path("client-"+id+"-key.pem")))
	return nil
}

// loadOrCreateCA reuses the CA in certPath and keyPath, or creates one when
// neither file exists. Half a CA is an error: overwriting it would orphan
// every certificate it signed.
func loadOrCreateCA(certPath, keyPath string) (ca *tlsconfig.CA, reused bool, err error) {
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := tlsconfig.ParseCA(certPEM, keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("existing CA %s: %w (move it away to create a new one)", certPath, err)
		}
		if time.Now().After(ca.Cert.NotAfter) {
			return nil, false, fmt.Errorf("existing CA %s expired at %s (move it away to create a new one)", certPath, day(ca.Cert.NotAfter))
		}
		return ca, true, nil
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		ca, err := tlsconfig.NewCA("Corvid development CA", tlsconfig.CAValidity)
		if err != nil {
			return nil, false, err
		}
		if err := ca.WriteFiles(certPath, keyPath); err != nil {
			return nil, false, err
		}
		return ca, false, nil
	case certErr == nil:
		return nil, false, fmt.Errorf("%s exists but %s does not: restore the CA key, or move the certificate away to create a new CA", certPath, filepath.Base(keyPath))
	case keyErr == nil:
		return nil, false, fmt.Errorf("%s exists but %s does not: restore the CA certificate, or move the key away to create a new CA", keyPath, filepath.Base(certPath))
	}
	return nil, false, errors.Join(certErr, keyErr)
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

var plainPath = regexp.MustCompile(`^[A-Za-z0-9/._+:-]+$`)

// yamlString quotes a path for YAML when it needs it.
func yamlString(s string) string {
	if plainPath.MatchString(s) {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// shellString quotes a path for a POSIX shell when it needs it.
func shellString(s string) string {
	if plainPath.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
