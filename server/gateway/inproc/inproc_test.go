package inproc_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/corvidml/corvid/server/gateway/inproc"
)

// TestFromGateway serves one grpc.Server on a TCP listener and an inproc
// Listener: only calls over the latter are from the gateway.
func TestFromGateway(t *testing.T) {
	defer goleak.VerifyNone(t)
	var mu sync.Mutex
	var fromGateway []bool
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		fromGateway = append(fromGateway, inproc.FromGateway(ctx))
		mu.Unlock()
		return h(ctx, req)
	}
	s := grpc.NewServer(grpc.Creds(inproc.Credentials(insecure.NewCredentials())), grpc.UnaryInterceptor(record))
	healthpb.RegisterHealthServer(s, health.NewServer())
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := inproc.Listen()
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(tcp) })
	wg.Go(func() { s.Serve(in) })
	defer func() {
		s.Stop()
		wg.Wait()
	}()

	check := func(target string, opts ...grpc.DialOption) {
		t.Helper()
		conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	check(tcp.Addr().String())
	check(inproc.Target, grpc.WithContextDialer(in.Dial))
	mu.Lock()
	defer mu.Unlock()
	if len(fromGateway) != 2 || fromGateway[0] || !fromGateway[1] {
		t.Errorf("FromGateway over TCP, then in-process = %v, want [false true]", fromGateway)
	}
}

func TestDialClosed(t *testing.T) {
	l := inproc.Listen()
	l.Close()
	if _, err := l.Dial(t.Context(), ""); !errors.Is(err, inproc.ErrClosed) {
		t.Errorf("Dial after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Accept(); !errors.Is(err, inproc.ErrClosed) {
		t.Errorf("Accept after Close: %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := inproc.Listen().Dial(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context and no Accept: %v, want context.Canceled", err)
	}
}
