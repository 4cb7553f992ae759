package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(good, []byte("eyJhbGciOiJFUzI1NiJ9.e30.sig\n"), 0o600)
	os.WriteFile(empty, []byte("  \n"), 0o600)
	if opts, err := (tlsFlags{tokenFile: good}).options(); err != nil || len(opts) != 1 {
		t.Errorf("token file: %d options, %v; want 1", len(opts), err)
	}
	if opts, err := (tlsFlags{tokenFile: good, ca: "ca.pem"}).options(); err != nil || len(opts) != 2 {
		t.Errorf("token file and --ca: %d options, %v; want 2", len(opts), err)
	}
	for file, want := range map[string]string{empty: "is empty", filepath.Join(dir, "nope"): "--token-file"} {
		if _, err := (tlsFlags{tokenFile: file}).options(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", file, err, want)
		}
	}
	if opts, err := (tlsFlags{}).options(); err != nil || len(opts) != 0 {
		t.Errorf("no flags: %d options, %v", len(opts), err)
	}
}
