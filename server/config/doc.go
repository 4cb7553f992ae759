// Package config owns the server's settings: one documented struct with safe
// defaults, loaded from a YAML file whose keys mirror the command-line flags,
// and validated once at start so a bad setting stops the server before it
// listens. It imports no other server package but the three whose settings
// it embeds: tlsconfig (tls), auth (auth.jwt) and ratelimit (rate_limit).
package config
