package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/corvidml/corvid/server/auth"
	"github.com/corvidml/corvid/server/ratelimit"
	"github.com/corvidml/corvid/server/tlsconfig"
)

// Config is everything `corvid serve` can be told. YAML keys are the json tags;
// command-line flags of the same name (with dashes) override the file.
type Config struct {
	// GRPCAddr is the gRPC listen address (InferenceService, health, reflection).
	GRPCAddr string `json:"grpc_addr"`
	// HTTPAddr is the REST listen address (grpc-gateway, /openapi.json).
	HTTPAddr string `json:"http_addr"`
	// AdminAddr is the admin listen address (/healthz, /readyz).
	AdminAddr string `json:"admin_addr"`
	// Models is the model repository folder (<model>/<version>/model.onnx).
	// Empty serves the model embedded in the binary.
	Models string `json:"models"`

	// MaxRecvMsgBytes bounds one gRPC message and one REST body.
	MaxRecvMsgBytes int `json:"max_recv_msg_bytes"`
	// MaxConcurrentStreams bounds concurrent RPCs per HTTP/2 connection; grpc-go's
	// default is unlimited, which the HTTP/2 rapid-reset attack exploits.
	MaxConcurrentStreams uint32 `json:"max_concurrent_streams"`
	// MaxModelBytes bounds the size of a model file read from the repository.
	MaxModelBytes int64 `json:"max_model_bytes"`
	// MaxRequestElements bounds the elements of all the input tensors of one
	// request (a Stream item counts alone), checked before any tensor is
	// decoded.
	MaxRequestElements int64 `json:"max_request_elements"`
	// LoadTimeout bounds loading one model version (decoding, calibration,
	// compilation, warm-up); past it the version is FAILED.
	LoadTimeout Duration `json:"load_timeout"`
	// MaxBatch is the largest first dimension (batch) a request may carry.
	MaxBatch int `json:"max_batch"`
	// MaxDim bounds every dynamic input dimension other than the batch (a
	// sequence length, an image side).
	MaxDim int `json:"max_dim"`
	// MaxVariants bounds the graphs each worker keeps compiled per model
	// version: one per batch bucket and set of sizes of the other dynamic
	// dimensions; the least recently used is dropped first.
	MaxVariants int `json:"max_variants"`
	// Workers is the number of compiled graph instances per model version; 0
	// means one per CPU the process may use. A model's model.yaml may set
	// its own (instances).
	Workers int `json:"workers"`
	// ModelControl is where ModelControlService (load, unload, reload,
	// index) is served: admin (gRPC and REST on the admin port only), on
	// (also on the gRPC and REST ports) or off.
	ModelControl string `json:"model_control"`
	// RescanInterval is how often the model repository is rescanned, in
	// addition to the file-system events that trigger a rescan at once.
	RescanInterval Duration `json:"rescan_interval"`
	// Settle is how long a new or changed model file must keep its size and
	// modification time before it loads (a file still being copied must
	// not load half-written).
	Settle Duration `json:"settle"`
	// StreamConcurrency bounds the requests of one Stream computed at once.
	StreamConcurrency int `json:"stream_concurrency"`

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout bound the
	// phases of a REST or admin connection (slow clients must not hold sockets).
	ReadHeaderTimeout Duration `json:"read_header_timeout"`
	ReadTimeout       Duration `json:"read_timeout"`
	WriteTimeout      Duration `json:"write_timeout"`
	IdleTimeout       Duration `json:"idle_timeout"`
	// MaxHeaderBytes bounds REST request headers.
	MaxHeaderBytes int `json:"max_header_bytes"`
	// MaxConnectionAge makes clients reconnect periodically, so load spreads
	// over replicas and rotated certificates take effect.
	MaxConnectionAge Duration `json:"max_connection_age"`
	// ShutdownGrace is how long in-flight requests may run after SIGTERM
	// before the server stops them.
	ShutdownGrace Duration `json:"shutdown_grace"`

	// TLS secures the gRPC, REST and admin ports alike when it names a
	// certificate and key; without them every port is plaintext.
	TLS TLS `json:"tls"`
	// Auth authenticates callers (client certificates need tls; bearer JWTs
	// need auth.jwt) and authorizes them per model (auth.policy_file).
	Auth Auth `json:"auth"`
	// RateLimit, when its rate is set, bounds each caller identity's
	// requests (RESOURCE_EXHAUSTED / 429 with a retry delay beyond it).
	RateLimit ratelimit.Config `json:"rate_limit"`

	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is text or json.
	LogFormat string `json:"log_format"`
}

// Default returns the settings `corvid serve` uses when told nothing.
func Default() Config {
	return Config{
		GRPCAddr:             ":8500",
		HTTPAddr:             ":8501",
		AdminAddr:            ":8502",
		MaxRecvMsgBytes:      16 << 20,
		MaxConcurrentStreams: 256,
		MaxModelBytes:        1 << 30,
		MaxBatch:             64,
		MaxRequestElements:   1 << 24,
		LoadTimeout:          Duration(10 * time.Minute),
		MaxDim:               4096,
		MaxVariants:          16,
		StreamConcurrency:    32,
		RescanInterval:       Duration(2 * time.Second),
		ModelControl:         "admin",
		Settle:               Duration(500 * time.Millisecond),
		ReadHeaderTimeout:    Duration(5 * time.Second),
		ReadTimeout:          Duration(30 * time.Second),
		WriteTimeout:         Duration(30 * time.Second),
		IdleTimeout:          Duration(120 * time.Second),
		MaxHeaderBytes:       64 << 10,
		MaxConnectionAge:     Duration(30 * time.Minute),
		ShutdownGrace:        Duration(10 * time.Second),
		TLS:                  TLS{ReloadInterval: Duration(tlsconfig.DefaultWatchInterval)},
		LogLevel:             "info",
		LogFormat:            "text",
	}
}

// TLS is the tls section: tlsconfig.Config's keys (cert_file, key_file,
// client_ca_file, client_auth, min_version) and how often the files are
// checked for a rotated certificate or CA bundle.
type TLS struct {
	tlsconfig.Config
	// ReloadInterval is how often the certificate, key and client-CA files
	// are read again; changed files take effect on the next handshake.
	ReloadInterval Duration `json:"reload_interval"`
}

// Auth is the auth section.
type Auth struct {
	// JWT accepts bearer tokens signed by the keys in keys_file (a JWKS or
	// PEM public keys), for issuer and audience, with leeway (<= 60s).
	JWT *JWT `json:"jwt"`
	// PolicyFile maps identities to the models and actions (predict,
	// status, control) they may use; once set, everything else is denied
	// and callers without an identity are refused.
	PolicyFile string `json:"policy_file"`
}

// JWT is auth.jwt.
type JWT struct {
	KeysFile string   `json:"keys_file"`
	Issuer   string   `json:"issuer"`
	Audience string   `json:"audience"`
	Leeway   Duration `json:"leeway"`
}

// Verifier is the auth package's form of j.
func (j *JWT) Verifier() auth.JWTConfig {
	return auth.JWTConfig{KeysFile: j.KeysFile, Issuer: j.Issuer, Audience: j.Audience, Leeway: time.Duration(j.Leeway)}
}

// Load reads a YAML file over the defaults. Unknown keys are errors, so a
// misspelt setting is not silently ignored.
func Load(path string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return cfg, fmt.Errorf("parse config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate reports every invalid setting at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, a := range []struct{ name, addr string }{
		{"grpc_addr", c.GRPCAddr}, {"http_addr", c.HTTPAddr}, {"admin_addr", c.AdminAddr},
	} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad("%s %q: want host:port", a.name, a.addr)
		}
	}
	if c.MaxRecvMsgBytes < 1<<10 {
		bad("max_recv_msg_bytes is %d, want >= 1024", c.MaxRecvMsgBytes)
	}
	if c.MaxConcurrentStreams < 1 {
		bad("max_concurrent_streams is %d, want >= 1", c.MaxConcurrentStreams)
	}
	if c.MaxModelBytes < 1 {
		bad("max_model_bytes is %d, want >= 1", c.MaxModelBytes)
	}
	if c.MaxRequestElements < 1 {
		bad("max_request_elements is %d, want >= 1", c.MaxRequestElements)
	}
	if c.LoadTimeout < Duration(time.Second) {
		bad("load_timeout is %v, want >= 1s", time.Duration(c.LoadTimeout))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 1<<16 {
		bad("max_batch is %d, want 1..65536", c.MaxBatch)
	}
	if c.MaxDim < 1 || c.MaxDim > 1<<20 {
		bad("max_dim is %d, want 1..1048576", c.MaxDim)
	}
	if c.MaxVariants < 1 || c.MaxVariants > 1024 {
		bad("max_variants is %d, want 1..1024", c.MaxVariants)
	}
	if c.RescanInterval < Duration(10*time.Millisecond) {
		bad("rescan_interval is %v, want >= 10ms", time.Duration(c.RescanInterval))
	}
	switch c.ModelControl {
	case "admin", "on", "off":
	default:
		bad("model_control is %q, want admin, on or off", c.ModelControl)
	}
	if c.Settle < 0 {
		bad("settle is %v, want >= 0", time.Duration(c.Settle))
	}
	if c.Workers < 0 {
		bad("workers is %d, want >= 0 (0: one per CPU)", c.Workers)
	}
	if c.StreamConcurrency < 1 {
		bad("stream_concurrency is %d, want >= 1", c.StreamConcurrency)
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout},
		{"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout},
		{"max_connection_age", c.MaxConnectionAge}, {"shutdown_grace", c.ShutdownGrace},
	} {
		if d.d <= 0 {
			bad("%s is %v, want > 0", d.name, time.Duration(d.d))
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.TLS.Enabled() && c.TLS.ReloadInterval < Duration(10*time.Millisecond) {
		bad("tls.reload_interval is %v, want >= 10ms", time.Duration(c.TLS.ReloadInterval))
	}
	if j := c.Auth.JWT; j != nil {
		cfg := j.Verifier()
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RateLimit != (ratelimit.Config{}) {
		if err := c.RateLimit.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxHeaderBytes < 1<<10 {
		bad("max_header_bytes is %d, want >= 1024", c.MaxHeaderBytes)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format %q: want text or json", c.LogFormat)
	}
	if c.Models != "" {
		if st, err := os.Stat(c.Models); err != nil {
			bad("models %q: %v", c.Models, errors.Unwrap(err))
		} else if !st.IsDir() {
			bad("models %q: not a folder", c.Models)
		}
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written as "10s" or "1m30s" in YAML.
type Duration time.Duration

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value, so a Duration can be a flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "10s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"10s\", got %s", b)
	}
	return d.Set(s)
}
