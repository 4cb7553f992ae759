package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/server/gateway"
	"github.com/corvidml/corvid/server/gateway/inproc"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// recorder answers Predict and remembers what reached gRPC.
type recorder struct {
	corvidv1.UnimplementedInferenceServiceServer
	mu          sync.Mutex
	fromGateway bool
	certs       []string
}

func (r *recorder) Predict(ctx context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.fromGateway = inproc.FromGateway(ctx)
	r.certs = md.Get(inproc.ClientCertKey)
	r.mu.Unlock()
	return &corvidv1.PredictResponse{Model: req.GetModel(), Version: 1}, nil
}

func (r *recorder) last() (bool, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fromGateway, r.certs
}

// TestClientCertForwarded serves the gateway over HTTPS (client
// certificates requested, not required) in front of a gRPC server reached
// in-process: the verified certificate of the REST connection reaches gRPC
// as inproc.ClientCertKey, and a caller's header of that name never does.
func TestClientCertForwarded(t *testing.T) {
	defer goleak.VerifyNone(t)
	ca, err := tlsconfig.NewCA("gateway test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.Issue(tlsconfig.Leaf{CommonName: "localhost", DNSNames: []string{"localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ca.Issue(tlsconfig.Leaf{CommonName: "alice", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	pair := func(kp *tlsconfig.KeyPair) tls.Certificate {
		c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	rec := &recorder{}
	gs := grpc.NewServer(grpc.Creds(inproc.Credentials(insecure.NewCredentials())))
	corvidv1.RegisterInferenceServiceServer(gs, rec)
	lis := inproc.Listen()
	var wg sync.WaitGroup
	wg.Go(func() { gs.Serve(lis) })
	defer func() {
		gs.Stop()
		wg.Wait()
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := gateway.New(ctx, inproc.Target, gateway.Options{
		MaxBodyBytes: 1 << 20,
		DialOptions:  []grpc.DialOption{grpc.WithContextDialer(lis.Dial), grpc.WithTransportCredentials(insecure.NewCredentials())},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(h)
	hs.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair(srvCert)}, ClientCAs: pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS13,
	}
	hs.StartTLS()
	defer hs.Close()

	spoof := base64.StdEncoding.EncodeToString(srvCert.Cert.Raw) // any certificate but the caller's
	for _, tt := range []struct {
		name     string
		certs    []tls.Certificate
		wantCert []string
	}{
		{"with a client certificate", []tls.Certificate{pair(alice)}, []string{string(alice.Cert.Raw)}},
		{"without one", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: tt.certs}}
			defer tr.CloseIdleConnections()
			req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/models/m:predict", bytes.NewReader([]byte(`{}`)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Grpc-Metadata-"+inproc.ClientCertKey, spoof)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("POST :predict = %d %s", resp.StatusCode, b)
			}
			fromGateway, certs := rec.last()
			if !fromGateway {
				t.Error("FromGateway = false for a REST request, want true")
			}
			if len(certs) != len(tt.wantCert) || (len(certs) == 1 && certs[0] != tt.wantCert[0]) {
				t.Errorf("%s reached gRPC as %d values, want the caller's verified certificate only (%d)", inproc.ClientCertKey, len(certs), len(tt.wantCert))
			}
		})
	}
}
