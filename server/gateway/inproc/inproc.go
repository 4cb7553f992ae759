package inproc

import (
	"context"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Listener is a net.Listener whose connections are made by its Dial method
// and exist only inside this process. Serve a grpc.Server on it and pass
// Dial to grpc.WithContextDialer.
type Listener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// ErrClosed is returned by Accept and Dial once the listener is closed.
var ErrClosed = errors.New("inproc: listener closed")

// Listen returns an open in-process listener.
func Listen() *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next connection made by Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops Accept and Dial; connections already made stay open until
// their ends are closed.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr names the listener; it is not a network address.
func (l *Listener) Addr() net.Addr { return addr{} }

// Dial connects to the listener and returns the client end once the server
// has accepted the other. The target is ignored, so it fits
// grpc.WithContextDialer whatever target the client was given.
func (l *Listener) Dial(ctx context.Context, _ string) (net.Conn, error) {
	client, server, err := pair()
	if err != nil {
		return nil, err
	}
	select {
	case l.conns <- &serverConn{Conn: server}:
		return client, nil
	case <-l.done:
		err = ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	client.Close()
	server.Close()
	return nil, err
}

// Target is a grpc.NewClient target for a client that dials a Listener
// (grpc.WithContextDialer(l.Dial)): the passthrough resolver hands it to the
// dialer unchanged.
const Target = "passthrough:///corvid-inproc"

type addr struct{}

func (addr) Network() string { return "inproc" }
func (addr) String() string  { return "corvid-inproc" }

// serverConn marks the server end of an in-process connection, which only
// Dial can make: a connection accepted from a network listener is never
// one, whatever its peer sends.
type serverConn struct{ net.Conn }

func (c *serverConn) LocalAddr() net.Addr  { return addr{} }
func (c *serverConn) RemoteAddr() net.Addr { return addr{} }

// AuthInfo is the peer.AuthInfo of a call that entered over a Listener: a
// REST request relayed by the gateway.
type AuthInfo struct {
	credentials.CommonAuthInfo
}

// AuthType names the in-process transport.
func (AuthInfo) AuthType() string { return "corvid-inproc" }

// ClientCertKey is the binary metadata key under which the gateway
// forwards the verified client certificate (DER, the leaf) of the REST
// connection a request came in on. Believe it only when FromGateway
// reports true: any other caller can send metadata of that name, and the
// gateway drops a REST caller's header that would set it.
const ClientCertKey = "corvid-rest-client-cert-bin"

// FromGateway reports whether the call in ctx arrived over a Listener, that
// is, from the REST gateway inside this process. Only then may identity
// metadata added by the gateway be believed.
func FromGateway(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, ok = p.AuthInfo.(AuthInfo)
	return ok
}

// Credentials returns server transport credentials for a grpc.Server that
// serves both network listeners and a Listener: a connection accepted from
// a Listener skips the handshake and carries AuthInfo; every other one goes
// through public (TLS, or insecure credentials for a plaintext server).
func Credentials(public credentials.TransportCredentials) credentials.TransportCredentials {
	return &creds{public: public}
}

type creds struct {
	public credentials.TransportCredentials
}

func (c *creds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if _, ok := conn.(*serverConn); ok {
		// The bytes never leave the process, so they are as private as
		// the process's memory.
		return conn, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
	}
	return c.public.ServerHandshake(conn)
}

func (c *creds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.public.ClientHandshake(ctx, authority, conn)
}

func (c *creds) Info() credentials.ProtocolInfo { return c.public.Info() }

func (c *creds) Clone() credentials.TransportCredentials {
	return &creds{public: c.public.Clone()}
}

// OverrideServerName is deprecated in grpc-go but still part of the
// interface.
func (c *creds) OverrideServerName(name string) error {
	return c.public.OverrideServerName(name)
}
