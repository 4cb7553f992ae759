package tlsconfig

import "crypto/tls"

// Identity returns the caller's identity from its verified client
// certificate: the first spiffe:// URI SAN if there is one, else the subject
// common name. It reports false when the connection carries no verified
// client certificate (or one with neither), so an unverified certificate
// never names a caller.
func Identity(state *tls.ConnectionState) (string, bool) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return "", false
	}
	leaf := state.VerifiedChains[0][0]
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			return u.String(), true
		}
	}
	if cn := leaf.Subject.CommonName; cn != "" {
		return cn, true
	}
	return "", false
}
