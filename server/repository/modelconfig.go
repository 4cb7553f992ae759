package repository

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/routing"
)

// ConfigFile is the name of a model's settings file, beside its version
// folders: DIR/<model>/model.yaml. It is optional.
const ConfigFile = "model.yaml"

// DefaultCalibrationFile is where int8-static looks for its calibration
// set when model.yaml names none: DIR/<model>/calibration.npz.
const DefaultCalibrationFile = "calibration.npz"

// maxConfigBytes bounds model.yaml.
const maxConfigBytes = 1 << 20

// The quantization modes model.yaml accepts.
const (
	QuantFP32        = "fp32"
	QuantInt8Dynamic = "int8-dynamic"
	QuantInt8Static  = "int8-static"
)

// ModelConfig is a model's model.yaml. Unknown keys are errors, so a typo
// cannot silently leave a setting at its default.
type ModelConfig struct {
	// Quantization is how the model's float MatMul, Gemm and Conv run:
	// fp32 (default), int8-dynamic (int8 weights, activations quantized per
	// row at run time) or int8-static (activation ranges measured on the
	// calibration set at load time).
	Quantization string `json:"quantization"`
	// Calibration is the calibration set of int8-static: a numpy .npz file
	// inside the model's folder holding one array per graph input, first
	// axis the samples. Default calibration.npz.
	Calibration string `json:"calibration"`
	// VersionPolicy chooses the versions to load: `{latest: N}` (the
	// default is {latest: 1}, as in TF Serving and Triton), `{specific: [1,
	// 3]}` or `all`. Versions that labels, routing.traffic or
	// routing.shadow name are loaded too.
	VersionPolicy VersionPolicy `json:"version_policy"`
	// Labels name versions (`stable: 3`); a request may ask for a label.
	// A label must point to a version that is loaded.
	Labels map[string]int64 `json:"labels"`
	// Instances is the number of compiled graph instances (workers) per
	// version; 0 means the server's default (one per core).
	Instances int `json:"instances"`
	// Batching, when set, queues requests to a version and runs them in
	// batches.
	Batching *BatchingConfig `json:"batching"`
	// Routing splits traffic between versions and mirrors it to a shadow.
	Routing *RoutingConfig `json:"routing"`
	// Privacy adds Laplace noise to float outputs (differential privacy).
	Privacy *PrivacyConfig `json:"privacy"`
	// PayloadLog logs a sample of requests and responses; off by default.
	PayloadLog *PayloadLogConfig `json:"payload_log"`
}

// PrivacyConfig is model.yaml's privacy section: Laplace noise of scale
// sensitivity/epsilon on every element of the named float outputs (all of
// them when Outputs is empty); integer outputs, such as labels, are not
// changed, so a classifier meant to be private should expose only its
// probabilities.
type PrivacyConfig struct {
	// Epsilon is the privacy budget of one response (smaller: more noise).
	Epsilon float64 `json:"epsilon"`
	// Sensitivity is the L1 sensitivity of the outputs to one individual:
	// the operator's statement about the model and its data.
	Sensitivity float64 `json:"sensitivity"`
	// Outputs names the outputs that get noise.
	Outputs []string `json:"outputs"`
}

// PayloadLogConfig is model.yaml's payload_log section.
type PayloadLogConfig struct {
	// Sample is the share of requests logged, 0 to 1.
	Sample float64 `json:"sample"`
	// Redact names inputs whose values are never logged.
	Redact []string `json:"redact"`
}

// VersionPolicy is `{latest: N}`, `{specific: [...]}` or `all`.
type VersionPolicy struct {
	Latest   int     `json:"latest,omitempty"`
	Specific []int64 `json:"specific,omitempty"`
	All      bool    `json:"-"`
}

// UnmarshalJSON accepts the string "all" as well as the object forms.
func (p *VersionPolicy) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "all" {
			return fmt.Errorf("got %q, want all, {latest: N} or {specific: [versions]}", s)
		}
		*p = VersionPolicy{All: true}
		return nil
	}
	type plain VersionPolicy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v plain
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("want all, {latest: N} or {specific: [versions]}: %w", err)
	}
	*p = VersionPolicy(v)
	return nil
}

// wants reports which of the versions found (ascending) the policy loads.
func (p VersionPolicy) wants(found []int64) map[int64]bool {
	out := map[int64]bool{}
	switch {
	case p.All:
		for _, v := range found {
			out[v] = true
		}
	case len(p.Specific) > 0:
		for _, v := range p.Specific {
			if slices.Contains(found, v) {
				out[v] = true
			}
		}
	default:
		n := max(p.Latest, 1)
		for i := len(found) - 1; i >= 0 && len(out) < n; i-- {
			out[found[i]] = true
		}
	}
	return out
}

func (p VersionPolicy) String() string {
	switch {
	case p.All:
		return "all"
	case len(p.Specific) > 0:
		return fmt.Sprintf("specific %v", p.Specific)
	}
	return fmt.Sprintf("latest %d", max(p.Latest, 1))
}

// BatchingConfig is model.yaml's batching section.
type BatchingConfig struct {
	// MaxBatchSize caps the rows of one batch (default: the model's max).
	MaxBatchSize int `json:"max_batch_size"`
	// MaxQueueDelay is how long the first request of a batch may wait for
	// others, e.g. "500us".
	MaxQueueDelay Duration `json:"max_queue_delay"`
	// PreferredBatchSizes cut a batch as soon as it reaches one of them.
	PreferredBatchSizes []int `json:"preferred_batch_sizes"`
	// MaxQueueSize bounds the queued requests; more are refused at once.
	MaxQueueSize int `json:"max_queue_size"`
	// Timeout bounds a request's time in the queue and in the model.
	Timeout Duration `json:"timeout"`
}

// RoutingConfig is model.yaml's routing section.
type RoutingConfig struct {
	// Traffic splits requests that name no version or label by weight:
	// `{3: 90, 4: 10}`.
	Traffic map[string]int `json:"traffic"`
	// StickyBy names the request metadata key whose value routes a request
	// (routing_key by default): the same value always reaches the same
	// version while the weights stay the same.
	StickyBy string `json:"sticky_by"`
	// Shadow mirrors a sample of the traffic to a version whose results are
	// compared with the primary's and never returned.
	Shadow *ShadowConfig `json:"shadow"`
}

// ShadowConfig is routing.shadow.
type ShadowConfig struct {
	// Version is the shadow version: it gets copies, never callers.
	Version int64 `json:"version"`
	// Sample is the share of requests copied (default 1).
	Sample *float64 `json:"sample"`
	// QueueSize bounds the copies waiting; more are dropped and counted.
	QueueSize int `json:"queue_size"`
	// Timeout bounds one shadow run (default 1s).
	Timeout Duration `json:"timeout"`
}

// routingShadow is the routing package's form of s.
func (s *ShadowConfig) routingShadow() routing.ShadowConfig {
	sample := 1.0
	if s.Sample != nil {
		sample = *s.Sample
	}
	return routing.ShadowConfig{Sample: sample, QueueSize: s.QueueSize, Timeout: time.Duration(s.Timeout)}
}

// Duration is a time.Duration written as "500us" or "2s" in YAML.
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"500us\" or \"2s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("want a duration such as \"500us\" or \"2s\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// validate checks what can be checked without knowing the versions on
// disk; errors name the key as model.yaml spells it.
func (c *ModelConfig) validate() error {
	if c.Quantization == "" {
		c.Quantization = QuantFP32
	}
	switch c.Quantization {
	case QuantFP32, QuantInt8Dynamic, QuantInt8Static:
	default:
		return fmt.Errorf("quantization: got %q, want %s, %s or %s", c.Quantization, QuantFP32, QuantInt8Dynamic, QuantInt8Static)
	}
	if c.Calibration != "" && c.Quantization != QuantInt8Static {
		return fmt.Errorf("calibration: set, but quantization is %s; only %s uses a calibration set", c.Quantization, QuantInt8Static)
	}
	p := c.VersionPolicy
	if p.Latest < 0 {
		return fmt.Errorf("version_policy.latest: got %d, want >= 1", p.Latest)
	}
	if p.Latest > 0 && len(p.Specific) > 0 {
		return fmt.Errorf("version_policy: set either latest or specific, not both")
	}
	for _, v := range p.Specific {
		if v < 1 {
			return fmt.Errorf("version_policy.specific: version %d, want positive integers", v)
		}
	}
	for name, v := range c.Labels {
		if err := ValidateName(name); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		if v < 1 {
			return fmt.Errorf("labels.%s: version %d, want a positive integer", name, v)
		}
	}
	if p := c.Privacy; p != nil {
		if !(p.Epsilon > 0) || math.IsInf(p.Epsilon, 0) {
			return fmt.Errorf("privacy.epsilon: got %v, want a positive number", p.Epsilon)
		}
		if !(p.Sensitivity > 0) || math.IsInf(p.Sensitivity, 0) {
			return fmt.Errorf("privacy.sensitivity: got %v, want a positive number (the outputs' L1 sensitivity)", p.Sensitivity)
		}
	}
	if l := c.PayloadLog; l != nil && !(l.Sample >= 0 && l.Sample <= 1) {
		return fmt.Errorf("payload_log.sample: got %v, want 0 to 1", l.Sample)
	}
	if c.Instances < 0 || c.Instances > 1024 {
		return fmt.Errorf("instances: got %d, want 0 (one per core) to 1024", c.Instances)
	}
	if b := c.Batching; b != nil {
		if b.MaxBatchSize < 0 || b.MaxQueueSize < 0 {
			return fmt.Errorf("batching: max_batch_size and max_queue_size must be >= 0, got %d and %d", b.MaxBatchSize, b.MaxQueueSize)
		}
		for _, n := range b.PreferredBatchSizes {
			if n < 1 || (b.MaxBatchSize > 0 && n > b.MaxBatchSize) {
				return fmt.Errorf("batching.preferred_batch_sizes: %d, want 1 to max_batch_size", n)
			}
		}
	}
	if r := c.Routing; r != nil {
		for k := range r.Traffic {
			if v, err := strconv.ParseInt(k, 10, 64); err != nil || v < 1 {
				return fmt.Errorf("routing.traffic: key %q, want a version number", k)
			}
		}
		if len(r.Traffic) > 0 {
			if _, err := routing.NewSplit(c.TrafficWeights()); err != nil {
				return err
			}
		}
		if s := r.Shadow; s != nil {
			if s.Version < 1 {
				return fmt.Errorf("routing.shadow.version: got %d, want a version number", s.Version)
			}
			if err := s.routingShadow().Validate(); err != nil {
				return err
			}
			if w := c.TrafficWeights(); w[s.Version] > 0 {
				return fmt.Errorf("routing.shadow.version: %d also takes traffic (routing.traffic); a shadow gets copies only", s.Version)
			}
		}
		if r.StickyBy != "" && r.StickyBy != "routing_key" && strings.ToLower(r.StickyBy) != r.StickyBy {
			return fmt.Errorf("routing.sticky_by: %q, want routing_key or a lowercase request metadata key", r.StickyBy)
		}
	}
	return nil
}

// TrafficWeights returns routing.traffic by version (nil when unset).
func (c *ModelConfig) TrafficWeights() map[int64]int {
	if c.Routing == nil || len(c.Routing.Traffic) == 0 {
		return nil
	}
	out := make(map[int64]int, len(c.Routing.Traffic))
	for k, w := range c.Routing.Traffic {
		v, _ := strconv.ParseInt(k, 10, 64) // checked by validate
		out[v] = w
	}
	return out
}

// loadKey is what the versions of a model were loaded with (compiled,
// calibrated, batched): a change reloads them. Labels and routing apply
// without a reload.
func (c *ModelConfig) loadKey() string {
	b, _ := json.Marshal([]any{c.Quantization, c.Calibration, c.Instances, c.Batching})
	return string(b)
}

// LoadRequest is what a Loader gets for one version.
type LoadRequest struct {
	// Model is the version's model.onnx.
	Model []byte
	// Config is the model's model.yaml (zero when absent).
	Config ModelConfig
	// Calibration is the calibration set's bytes, read only for
	// int8-static.
	Calibration []byte
	// External opens the model's external data files inside its version
	// folder (nil when the repository is not a folder on disk); valid only
	// during the load.
	External onnx.ExternalFiles
}

// readConfig reads and checks DIR/<model>/model.yaml (defaults when there
// is none); every error names the file and the key.
func (r *Repository) readConfig(name string) (ModelConfig, error) {
	cfg := ModelConfig{Quantization: QuantFP32}
	data, err := r.readLimited(name+"/"+ConfigFile, maxConfigBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if err := cfg.validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if cfg.Quantization == QuantInt8Static {
		if _, err := calibrationPath(name, cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// calibrationPath is the calibration set's path for int8-static.
func calibrationPath(name string, cfg ModelConfig) (string, error) {
	file := cfg.Calibration
	if file == "" {
		file = DefaultCalibrationFile
	}
	clean := path.Clean(file)
	if path.IsAbs(file) || strings.Contains(file, "\\") || clean == ".." || strings.HasPrefix(clean, "../") || !fs.ValidPath(clean) {
		return "", fmt.Errorf("%s: calibration: got %q, want a path inside the model's folder", ConfigFile, file)
	}
	return name + "/" + clean, nil
}

// readCalibration reads the calibration set int8-static needs (nil for the
// other modes).
func (r *Repository) readCalibration(name string, cfg ModelConfig) ([]byte, error) {
	if cfg.Quantization != QuantInt8Static {
		return nil, nil
	}
	p, err := calibrationPath(name, cfg)
	if err != nil {
		return nil, err
	}
	cal, err := r.readLimited(p, r.maxBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: quantization: %s needs a calibration set, and %s does not exist", ConfigFile, QuantInt8Static, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: calibration: %w", ConfigFile, err)
	}
	return cal, nil
}

// readLimited reads a file of the repository, refusing one over limit
// bytes.
func (r *Repository) readLimited(p string, limit int64) ([]byte, error) {
	f, err := r.fsys.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open %s: %w", path.Base(p), errors.Unwrap(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path.Base(p), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes", path.Base(p), limit)
	}
	return data, nil
}
