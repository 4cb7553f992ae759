package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	corvid "github.com/corvidml/corvid/client/go"
)

// tlsFlags are the transport-security flags of the commands that call a
// server (predict, status).
type tlsFlags struct {
	tls           bool
	ca, cert, key string
	tokenFile     string
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.tls, "tls", false, "connect over TLS, verifying the server against the system's roots (implied by --ca and --cert)")
	fs.StringVar(&f.ca, "ca", "", "CA certificate `PEM` the server's certificate must chain to; implies --tls")
	fs.StringVar(&f.cert, "cert", "", "client certificate `PEM` for mutual TLS (with --key); implies --tls")
	fs.StringVar(&f.key, "key", "", "client private key `PEM` (with --cert)")
	fs.StringVar(&f.tokenFile, "token-file", "", "`file` holding a bearer token (JWT) to send; a file, not a flag value, so it stays out of process lists and shell history")
}

func (f tlsFlags) validate() error {
	if (f.cert == "") != (f.key == "") {
		return errors.New("--cert and --key go together: give both or neither")
	}
	return nil
}

// options are the SDK options the flags ask for: TLS when any is set,
// plaintext otherwise.
func (f tlsFlags) options() ([]corvid.Option, error) {
	var opts []corvid.Option
	if f.tls || f.ca != "" || f.cert != "" {
		opts = append(opts, corvid.WithTLS(f.ca, f.cert, f.key))
	}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("--token-file %s is empty", f.tokenFile)
		}
		opts = append(opts, corvid.WithBearerToken(tok))
	}
	return opts, nil
}
