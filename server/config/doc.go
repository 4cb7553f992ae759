// Package config owns the server's settings: one documented struct with safe
// defaults, loaded from a YAML file whose keys mirror the command-line flags,
// and validated once at start so a bad setting stops the server before it
// listens. It must not import any other server package but tlsconfig, whose
// Config is the tls section.
package config
