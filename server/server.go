package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
	"github.com/corvidml/corvid/models"
	"github.com/corvidml/corvid/server/api"
	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/codec"
	"github.com/corvidml/corvid/server/config"
	"github.com/corvidml/corvid/server/gateway"
	"github.com/corvidml/corvid/server/gateway/inproc"
	"github.com/corvidml/corvid/server/middleware"
	"github.com/corvidml/corvid/server/npz"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/quantize"
	"github.com/corvidml/corvid/server/ratelimit"
	"github.com/corvidml/corvid/server/repository"
	"github.com/corvidml/corvid/server/runtime"
	"github.com/corvidml/corvid/server/tensor"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// Server is a configured Corvid server whose listeners are open.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	repo   *repository.Repository
	grpc   *grpc.Server
	health *health.Server

	grpcLis, httpLis, adminLis net.Listener
	// gatewayLis is where REST requests enter the gRPC server: the gateway
	// dials it in-process, so it needs no client certificate and cannot be
	// reached from outside (see package inproc).
	gatewayLis *inproc.Listener
	adminSrv   *http.Server
	// tls serves the certificates of every port; nil when TLS is off.
	tls *tlsconfig.Reloader
	// The model control service, served on the admin port (gRPC over
	// HTTP/2, cleartext or TLS, and REST) unless model_control is off.
	control   *api.Control
	adminGRPC *grpc.Server
	// guard authenticates callers on every port.
	guard   *middleware.Authenticator
	started time.Time
	loaded  chan struct{} // closed when the initial load is over
}

// New validates cfg, opens the three listeners and builds the servers. Models
// load when Serve runs.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	s := &Server{cfg: cfg, log: log, started: time.Now(), health: health.NewServer(), loaded: make(chan struct{})}

	var fsys fs.FS = models.Default
	if cfg.Models != "" {
		fsys = os.DirFS(cfg.Models)
	}
	s.repo = repository.New(fsys, loader(cfg, log), repository.Options{
		MaxModelBytes: cfg.MaxModelBytes, Settle: time.Duration(cfg.Settle), Logger: log, Dir: cfg.Models,
		LoadTimeout: time.Duration(cfg.LoadTimeout),
	})

	// The public gRPC port speaks TLS when configured; connections from the
	// in-process gateway listener skip the handshake (inproc.Credentials).
	var public credentials.TransportCredentials = insecure.NewCredentials()
	if cfg.TLS.Enabled() {
		var err error
		if s.tls, err = tlsconfig.Load(cfg.TLS.Config, log); err != nil {
			return nil, err
		}
		public = credentials.NewTLS(s.tls.ServerConfig("h2"))
	}

	guard, policy, err := authentication(cfg, log)
	if err != nil {
		return nil, err
	}
	s.guard = guard
	s.grpc = grpc.NewServer(append(middleware.ServerOptions(log, guard),
		grpc.Creds(inproc.Credentials(public)),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.ForceServerCodecV2(codec.Codec{}),
		// Handlers run on long-lived goroutines whose stacks have already
		// grown to what a request needs, rather than on a new goroutine per
		// call, which grew its stack (copying it, frame by frame) on every
		// call: at batch 1 on the digits CNN, 14 us of the int8 kernels'
		// time per request was runtime.newstack (CPU profile). Calls beyond
		// the workers get a goroutine of their own, as before.
		grpc.NumStreamWorkers(uint32(streamWorkers())),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      time.Duration(cfg.MaxConnectionAge),
			MaxConnectionAgeGrace: time.Duration(cfg.ShutdownGrace),
		}),
	)...)
	corvidv1.RegisterInferenceServiceServer(s.grpc, api.New(s.repo, api.Options{
		StreamConcurrency: cfg.StreamConcurrency, Logger: log, Policy: policy, MaxRequestElements: cfg.MaxRequestElements,
	}))
	if cfg.ModelControl != "off" {
		s.control = api.NewControl(s.repo, log)
		s.control.SetPolicy(policy)
		// Served through the admin HTTP server (ServeHTTP), whose timeouts
		// bound its connections; control messages are small.
		s.adminGRPC = grpc.NewServer(append(middleware.ServerOptions(log, guard), grpc.MaxRecvMsgSize(1<<20))...)
		corvidv1.RegisterModelControlServiceServer(s.adminGRPC, s.control)
	}
	if cfg.ModelControl == "on" {
		corvidv1.RegisterModelControlServiceServer(s.grpc, s.control)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setServing(false)

	s.gatewayLis = inproc.Listen()
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("listen gRPC: %w", err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("listen REST: %w", err)
	}
	if s.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("listen admin: %w", err)
	}
	return s, nil
}

// authentication builds the authenticator every RPC goes through and the
// authorization policy, from the auth and rate_limit settings. With neither
// a JWT verifier nor a policy, callers are anonymous and allowed; a client
// certificate still names them (for the rate limit and the audit log).
func authentication(cfg config.Config, log *slog.Logger) (*middleware.Authenticator, *auth.Policy, error) {
	a := &middleware.Authenticator{
		Internal: inproc.FromGateway,
		Open:     []string{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"},
		Log:      log,
	}
	if j := cfg.Auth.JWT; j != nil {
		v, err := auth.NewVerifier(j.Verifier())
		if err != nil {
			return nil, nil, fmt.Errorf("auth.jwt: %w", err)
		}
		a.JWT = v
	}
	var policy *auth.Policy
	if p := cfg.Auth.PolicyFile; p != "" {
		var err error
		if policy, err = auth.LoadPolicy(p); err != nil {
			return nil, nil, fmt.Errorf("auth.policy_file: %w", err)
		}
		a.Required = true
	}
	if cfg.RateLimit.Rate > 0 {
		a.Limit = ratelimit.New(cfg.RateLimit)
	}
	return a, policy, nil
}

// loader decodes, validates and compiles a version, quantized as its
// model.yaml asks.
func loader(cfg config.Config, log *slog.Logger) repository.Loader {
	return func(ctx context.Context, req repository.LoadRequest) (repository.Servable, error) {
		g, err := onnx.DecodeWith(req.Model, onnx.DecodeOptions{External: req.External, MaxExternalBytes: cfg.MaxModelBytes})
		if err != nil {
			return nil, err
		}
		mode, err := runtime.ParseQuantization(req.Config.Quantization)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", repository.ConfigFile, err)
		}
		workers := cfg.Workers
		if req.Config.Instances > 0 {
			workers = req.Config.Instances
		}
		opts := runtime.Options{
			MaxBatch: cfg.MaxBatch, MaxDim: cfg.MaxDim, MaxVariants: cfg.MaxVariants, Workers: workers, Logger: log,
			Quantization: mode,
		}
		if mode == runtime.QuantInt8Static {
			if opts.Ranges, err = calibrate(ctx, g, req, opts, cfg.MaxModelBytes); err != nil {
				return nil, err
			}
		}
		m, err := runtime.Compile(g, opts)
		if err != nil {
			return nil, err
		}
		// One inference per batch bucket on every worker, before the
		// version takes traffic. Zeros are not every model's idea of an
		// input, so a failure here is logged, not fatal.
		if err := m.Warm(ctx); err != nil {
			log.Warn("warm-up failed; graphs will be built on first use", "error", err.Error())
		}
		if req.Config.Batching == nil {
			return m, nil
		}
		bc := req.Config.Batching
		b, err := batching.New(m, batching.Config{
			MaxBatchSize: bc.MaxBatchSize, MaxQueueDelay: time.Duration(bc.MaxQueueDelay),
			PreferredBatchSizes: bc.PreferredBatchSizes, MaxQueueSize: bc.MaxQueueSize,
			Timeout: time.Duration(bc.Timeout), Concurrency: workers,
		})
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: %w", repository.ConfigFile, err)
		}
		return &batched{Model: m, b: b}, nil
	}
}

// batched is a model whose requests go through a dynamic batcher.
type batched struct {
	*runtime.Model
	b *batching.Batcher
}

func (m *batched) Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error) {
	return m.b.Run(ctx, inputs, outputs)
}

// BatchingStats reports the batcher's figures for ModelStatus.
func (m *batched) BatchingStats() batching.Stats { return m.b.Stats() }

// Close stops the batcher, which runs what is queued, then the model.
func (m *batched) Close() {
	m.b.Close()
	m.Model.Close()
}

// calibrate measures, on the version's calibration set, the range of every
// value int8-static quantizes.
func calibrate(ctx context.Context, g *onnx.Graph, req repository.LoadRequest, opts runtime.Options, maxBytes int64) (map[string]runtime.Range, error) {
	arrays, err := npz.Read(bytes.NewReader(req.Calibration), int64(len(req.Calibration)), maxBytes)
	if err != nil {
		return nil, fmt.Errorf("calibration set: %w", err)
	}
	names, err := runtime.QuantizableInputs(g)
	if err != nil {
		return nil, err
	}
	opts.Workers, opts.Quantization = 1, runtime.QuantFP32
	ranges, err := quantize.Calibrate(ctx, req.Model, names, []map[string]*tensor.Tensor{arrays}, quantize.CalibrateOptions{Runtime: opts})
	if err != nil {
		return nil, fmt.Errorf("calibration set: %w", err)
	}
	out := make(map[string]runtime.Range, len(ranges))
	for name, r := range ranges {
		out[name] = runtime.Range{Min: r.Min, Max: r.Max}
	}
	return out, nil
}

func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.grpcLis, s.httpLis, s.adminLis} {
		if l != nil {
			l.Close()
		}
	}
	s.gatewayLis.Close()
}

// GRPCAddr, HTTPAddr and AdminAddr are the addresses actually listened on
// (useful with port 0).
func (s *Server) GRPCAddr() string  { return s.grpcLis.Addr().String() }
func (s *Server) HTTPAddr() string  { return s.httpLis.Addr().String() }
func (s *Server) AdminAddr() string { return s.adminLis.Addr().String() }

// Loaded is closed once Serve's initial load of the repository is over,
// whatever its outcome: every version it wanted is AVAILABLE or FAILED,
// including the older versions it falls back to when the newest fail. Until
// then a model can be missing, or show only a version that failed.
func (s *Server) Loaded() <-chan struct{} { return s.loaded }

// setServing sets the overall and the InferenceService health status.
func (s *Server) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(corvidv1.InferenceService_ServiceDesc.ServiceName, st)
}

// Serve loads the models and serves until ctx is cancelled, then shuts down:
// health NOT_SERVING first, then the HTTP servers, then a graceful gRPC stop
// raced against the grace period, then a forced stop.
func (s *Server) Serve(ctx context.Context) error {
	gwCtx, cancelGW := context.WithCancel(context.Background())
	defer cancelGW()
	// REST requests enter the gRPC server over the in-process listener,
	// never over the public port: the gateway needs no client certificate
	// when the public port requires one, and a call from this connection
	// is known to come from the gateway (inproc.FromGateway), the only
	// caller whose identity metadata may be trusted.
	restHandler, err := gateway.New(gwCtx, inproc.Target, gateway.Options{
		MaxBodyBytes: int64(s.cfg.MaxRecvMsgBytes),
		ModelControl: s.cfg.ModelControl == "on",
		DialOptions: []grpc.DialOption{
			grpc.WithContextDialer(s.gatewayLis.Dial),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(s.cfg.MaxRecvMsgBytes), grpc.MaxCallSendMsgSize(s.cfg.MaxRecvMsgBytes),
				grpc.ForceCodecV2(codec.Codec{})),
		},
	})
	if err != nil {
		s.closeListeners()
		return err
	}
	restSrv := s.httpServer(restHandler)
	admin, err := s.adminHandler(gwCtx)
	if err != nil {
		s.closeListeners()
		return err
	}
	s.adminSrv = s.httpServer(admin)
	serveHTTP := func(srv *http.Server, l net.Listener) error { return srv.Serve(l) }
	var stopWatch context.CancelFunc = func() {}
	var watching sync.WaitGroup
	if s.tls != nil {
		// HTTP/1.1 and HTTP/2 (which the admin port's gRPC needs) over TLS.
		restSrv.TLSConfig = s.tls.ServerConfig()
		s.adminSrv.TLSConfig = s.tls.ServerConfig()
		serveHTTP = func(srv *http.Server, l net.Listener) error { return srv.ServeTLS(l, "", "") }
		// Rotated certificates and CA bundles take effect on the next
		// handshake of every port; the watch outlives the grace period.
		var watchCtx context.Context
		watchCtx, stopWatch = context.WithCancel(context.Background())
		watching.Go(func() { s.tls.Watch(watchCtx, time.Duration(s.cfg.TLS.ReloadInterval)) })
	} else {
		// gRPC on the admin port is HTTP/2 without TLS (h2c), beside HTTP/1.
		s.adminSrv.Protocols = new(http.Protocols)
		s.adminSrv.Protocols.SetHTTP1(true)
		s.adminSrv.Protocols.SetUnencryptedHTTP2(true)
	}
	defer func() {
		stopWatch()
		watching.Wait()
	}()

	errc := make(chan error, 4)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() { errc <- s.grpc.Serve(s.gatewayLis) }()
	go func() { errc <- serveHTTP(restSrv, s.httpLis) }()
	go func() { errc <- serveHTTP(s.adminSrv, s.adminLis) }()
	s.log.Info("corvid listening", "grpc", s.GRPCAddr(), "rest", s.HTTPAddr(), "admin", s.AdminAddr(), "tls", s.tlsMode())

	loadCtx, cancelLoad := context.WithCancel(ctx)
	var loading sync.WaitGroup
	loading.Add(1)
	go func() {
		defer loading.Done()
		s.loadModels(loadCtx)
	}()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		if errors.Is(serveErr, http.ErrServerClosed) {
			serveErr = nil
		}
		if serveErr != nil {
			serveErr = fmt.Errorf("server stopped: %w", serveErr)
		}
	}
	cancelLoad()
	loading.Wait()
	s.shutdown(restSrv)
	return serveErr
}

// loadModels loads the repository, reports readiness, and then keeps the
// repository in step with its folder (hot reload) until ctx ends. The
// embedded default models never change, so they are not watched.
func (s *Server) loadModels(ctx context.Context) {
	if _, err := s.repo.Sync(ctx); err != nil {
		s.log.Error("cannot read the model repository", "error", err)
	}
	ready, reason := s.repo.Ready()
	s.setServing(ready)
	close(s.loaded)
	if ready {
		s.log.Info("ready", "since_start", time.Since(s.started))
	} else {
		s.log.Warn("not ready", "reason", reason)
	}
	if s.cfg.Models == "" {
		return
	}
	s.repo.Watch(ctx, s.cfg.Models, time.Duration(s.cfg.RescanInterval), func() {
		ready, _ := s.repo.Ready()
		s.setServing(ready)
	})
}

// tlsMode describes the ports' security for the start-up log line.
func (s *Server) tlsMode() string {
	switch {
	case s.tls == nil:
		return "off"
	case s.cfg.TLS.ClientCAFile == "":
		return "on"
	}
	auth := s.cfg.TLS.ClientAuth
	if auth == "" {
		auth = tlsconfig.ClientAuthRequire
	}
	return "on, client certificates: " + auth
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Duration(s.cfg.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(s.cfg.ReadTimeout),
		WriteTimeout:      time.Duration(s.cfg.WriteTimeout),
		IdleTimeout:       time.Duration(s.cfg.IdleTimeout),
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) shutdown(restSrv *http.Server) {
	s.log.Info("shutting down", "grace", time.Duration(s.cfg.ShutdownGrace))
	s.health.Shutdown() // every service NOT_SERVING, and stays so
	deadline := time.Now().Add(time.Duration(s.cfg.ShutdownGrace))
	httpCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := restSrv.Shutdown(httpCtx); err != nil {
		restSrv.Close()
	}
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(time.Until(deadline)):
		s.log.Warn("grace period over: stopping in-flight RPCs")
		s.grpc.Stop()
		<-stopped
	}
	if err := s.adminSrv.Shutdown(httpCtx); err != nil {
		s.adminSrv.Close()
	}
	if s.adminGRPC != nil {
		s.adminGRPC.Stop()
	}
	s.repo.Close()
	s.log.Info("stopped")
}

// adminHandler serves /healthz (the process is up), /readyz (every model
// has an available version) and, unless model_control is off,
// ModelControlService over gRPC and REST (/v1/repository/...).
func (s *Server) adminHandler(ctx context.Context) (http.Handler, error) {
	mux := http.NewServeMux()
	if s.control != nil {
		gw := gwruntime.NewServeMux()
		if err := corvidv1.RegisterModelControlServiceHandlerServer(ctx, gw, s.control); err != nil {
			return nil, fmt.Errorf("register model control REST: %w", err)
		}
		mux.Handle("/v1/repository/", s.guard.HTTP(http.MaxBytesHandler(gw, 1<<20)))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		resp, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			_, reason := s.repo.Ready()
			if reason == "" {
				reason = "shutting down"
			}
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.control == nil {
		return mux, nil
	}
	grpcSrv := s.adminGRPC
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			grpcSrv.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// streamWorkers is how many goroutines the gRPC server keeps for handlers:
// enough for the requests the cores can run at once, and for those that
// wait on I/O or a batch meanwhile.
func streamWorkers() int { return 4 * goruntime.GOMAXPROCS(0) }
