// Package tlsconfig owns Corvid's TLS: the tls settings and their
// validation, a Reloader that serves certificates and client-CA bundles read
// from disk and swaps them atomically when the files change (a bad
// replacement keeps the previous ones), the caller identity carried by a
// verified client certificate, and the development CA behind `corvid certs`.
//
// It knows nothing of gRPC or HTTP: callers pass ServerConfig to
// credentials.NewTLS or http.Server.TLSConfig. It must not import any other
// server package.
package tlsconfig
