package corvid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

func TestPredictCallOptions(t *testing.T) {
	srv := &fakeServer{}
	c := dial(t, srv)
	inputs := map[string]*corvidv1.Tensor{"x": corvid.Float32Tensor([]float32{1, 2}, 1, 2)}

	tests := []struct {
		name string
		opts []corvid.CallOption
		want *corvidv1.PredictRequest
	}{
		{
			name: "none",
			want: &corvidv1.PredictRequest{Model: "m", Inputs: inputs},
		},
		{
			name: "version",
			opts: []corvid.CallOption{corvid.Version(3)},
			want: &corvidv1.PredictRequest{Model: "m", Inputs: inputs,
				VersionSelector: &corvidv1.PredictRequest_Version{Version: 3}},
		},
		{
			name: "label",
			opts: []corvid.CallOption{corvid.Label("canary")},
			want: &corvidv1.PredictRequest{Model: "m", Inputs: inputs,
				VersionSelector: &corvidv1.PredictRequest_VersionLabel{VersionLabel: "canary"}},
		},
		{
			name: "the last selector wins",
			opts: []corvid.CallOption{corvid.Label("canary"), corvid.Version(2)},
			want: &corvidv1.PredictRequest{Model: "m", Inputs: inputs,
				VersionSelector: &corvidv1.PredictRequest_Version{Version: 2}},
		},
		{
			name: "outputs, id and routing key",
			opts: []corvid.CallOption{
				corvid.Outputs("a", "b"), corvid.Outputs("c"),
				corvid.RequestID("req-1"), corvid.RoutingKey("user-42"),
			},
			want: &corvidv1.PredictRequest{Model: "m", Inputs: inputs,
				OutputFilter: []string{"a", "b", "c"}, RequestId: "req-1", RoutingKey: "user-42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Predict(t.Context(), "m", inputs, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := srv.lastCall()
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("request the server received (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(inputs, resp.GetOutputs(), protocmp.Transform()); diff != "" {
				t.Errorf("echoed outputs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPredictRequestError(t *testing.T) {
	c := dial(t, &fakeServer{})
	_, err := c.PredictRequest(t.Context(), &corvidv1.PredictRequest{Model: modelBad, RequestId: "r"})
	wantStatus(t, err, codes.InvalidArgument, `model "bad" rejects request "r"`)
}

func TestModelStatusAndListModels(t *testing.T) {
	c := dial(t, &fakeServer{})

	got, err := c.ModelStatus(t.Context(), "digits")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testModels[0], got, protocmp.Transform()); diff != "" {
		t.Errorf("ModelStatus (-want +got):\n%s", diff)
	}

	_, err = c.ModelStatus(t.Context(), "nope")
	wantStatus(t, err, codes.NotFound, `model "nope" not found`)

	all, err := c.ListModels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testModels, all, protocmp.Transform()); diff != "" {
		t.Errorf("ListModels (-want +got):\n%s", diff)
	}
}

func TestWithTimeout(t *testing.T) {
	tests := []struct {
		name         string
		opts         []corvid.Option
		ctxDeadline  bool
		wantDeadline bool
	}{
		{name: "no timeout", wantDeadline: false},
		{name: "default timeout", opts: []corvid.Option{corvid.WithTimeout(time.Minute)}, wantDeadline: true},
		{name: "caller's deadline", ctxDeadline: true, wantDeadline: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{}
			c := dial(t, srv, tt.opts...)
			ctx := t.Context()
			if tt.ctxDeadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Minute)
				defer cancel()
			}
			if _, err := c.Predict(ctx, "m", nil); err != nil {
				t.Fatal(err)
			}
			if _, _, got := srv.lastCall(); got != tt.wantDeadline {
				t.Errorf("server saw a deadline: %v, want %v", got, tt.wantDeadline)
			}
		})
	}
}

// TestBearerToken checks that the token reaches the server over plaintext
// only when the target is a loopback address. A custom dialer sends every
// target to the test server, so that the target alone decides.
func TestBearerToken(t *testing.T) {
	tests := []struct {
		target string
		want   codes.Code // OK: the token arrived
	}{
		{target: "localhost:8500"},
		{target: "127.0.0.1:8500"},
		{target: "[::1]:8500"},
		{target: "passthrough:///localhost:8500"},
		{target: "unix:///run/corvid.sock"},
		{target: "passthrough:///corvid.example:8500", want: codes.Unauthenticated},
		{target: "passthrough:///10.0.0.8:8500", want: codes.Unauthenticated},
	}
	srv := &fakeServer{}
	addr := serve(t, srv)
	toServer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	})
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			c, err := corvid.Dial(tt.target, corvid.WithBearerToken("s3cret"), corvid.WithDialOptions(toServer))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Predict(t.Context(), "m", nil)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("Predict: code = %v (%v), want %v", got, err, tt.want)
			}
			if tt.want != codes.OK {
				return
			}
			_, md, _ := srv.lastCall()
			if got, want := md.Get("authorization"), []string{"Bearer s3cret"}; !cmp.Equal(got, want) {
				t.Errorf("authorization = %q, want %q", got, want)
			}
		})
	}
}

// TestTLSBearerToken: over TLS the token goes to any target, loopback or
// not.
func TestTLSBearerToken(t *testing.T) {
	serverCert, roots := selfSignedCert(t, "corvid.test")
	srv := &fakeServer{}
	addr := serve(t, srv, grpc.Creds(credentials.NewServerTLSFromCert(&serverCert)))
	toServer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	})

	c, err := corvid.Dial("passthrough:///corvid.test:8500",
		corvid.WithTransportCredentials(credentials.NewClientTLSFromCert(roots, "corvid.test")),
		corvid.WithBearerToken("s3cret"),
		corvid.WithDialOptions(toServer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Predict(t.Context(), "m", nil); err != nil {
		t.Fatal(err)
	}
	_, md, _ := srv.lastCall()
	if got, want := md.Get("authorization"), []string{"Bearer s3cret"}; !cmp.Equal(got, want) {
		t.Errorf("authorization = %q, want %q", got, want)
	}
}

// selfSignedCert makes a certificate for host and a pool that trusts it.
func selfSignedCert(t *testing.T, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots
}

func TestNoBearerToken(t *testing.T) {
	srv := &fakeServer{}
	c := dial(t, srv)
	if _, err := c.Predict(t.Context(), "m", nil); err != nil {
		t.Fatal(err)
	}
	if _, md, _ := srv.lastCall(); len(md.Get("authorization")) != 0 {
		t.Errorf("authorization = %q, want none", md.Get("authorization"))
	}
}

// TestNewFromConn checks that options apply to a borrowed connection and
// that Close leaves it open for its owner.
func TestNewFromConn(t *testing.T) {
	srv := &fakeServer{}
	conn, err := grpc.NewClient(serve(t, srv), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	c := corvid.NewFromConn(conn, corvid.WithBearerToken("t"), corvid.WithTimeout(time.Minute))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Predict(t.Context(), "m", nil); err != nil {
		t.Fatalf("Predict after Close of a borrowed connection: %v", err)
	}
	_, md, deadline := srv.lastCall()
	if got, want := md.Get("authorization"), []string{"Bearer t"}; !cmp.Equal(got, want) {
		t.Errorf("authorization = %q, want %q", got, want)
	}
	if !deadline {
		t.Error("server saw no deadline, want the WithTimeout default")
	}
}
