package main

import (
	"errors"
	"flag"

	corvid "github.com/corvidml/corvid/client/go"
)

// tlsFlags are the transport-security flags of the commands that call a
// server (predict, status).
type tlsFlags struct {
	tls           bool
	ca, cert, key string
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.tls, "tls", false, "connect over TLS, verifying the server against the system's roots (implied by --ca and --cert)")
	fs.StringVar(&f.ca, "ca", "", "CA certificate `PEM` the server's certificate must chain to; implies --tls")
	fs.StringVar(&f.cert, "cert", "", "client certificate `PEM` for mutual TLS (with --key); implies --tls")
	fs.StringVar(&f.key, "key", "", "client private key `PEM` (with --cert)")
}

func (f tlsFlags) validate() error {
	if (f.cert == "") != (f.key == "") {
		return errors.New("--cert and --key go together: give both or neither")
	}
	return nil
}

// options are the SDK options the flags ask for: TLS when any is set,
// plaintext otherwise.
func (f tlsFlags) options() []corvid.Option {
	if !f.tls && f.ca == "" && f.cert == "" {
		return nil
	}
	return []corvid.Option{corvid.WithTLS(f.ca, f.cert, f.key)}
}
