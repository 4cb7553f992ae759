package repository

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"sigs.k8s.io/yaml"
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
}

// readConfig reads and checks DIR/<model>/model.yaml, and the calibration
// set it calls for; every error names the file and the key.
func (r *Repository) readConfig(name string) (ModelConfig, []byte, error) {
	cfg := ModelConfig{Quantization: QuantFP32}
	data, err := r.readLimited(name+"/"+ConfigFile, maxConfigBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil, nil
	}
	if err != nil {
		return cfg, nil, err
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return cfg, nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	if cfg.Quantization == "" {
		cfg.Quantization = QuantFP32
	}
	switch cfg.Quantization {
	case QuantFP32, QuantInt8Dynamic, QuantInt8Static:
	default:
		return cfg, nil, fmt.Errorf("%s: quantization: got %q, want %s, %s or %s", ConfigFile, cfg.Quantization, QuantFP32, QuantInt8Dynamic, QuantInt8Static)
	}
	if cfg.Calibration != "" && cfg.Quantization != QuantInt8Static {
		return cfg, nil, fmt.Errorf("%s: calibration: set, but quantization is %s; only %s uses a calibration set", ConfigFile, cfg.Quantization, QuantInt8Static)
	}
	if cfg.Quantization != QuantInt8Static {
		return cfg, nil, nil
	}
	file := cfg.Calibration
	if file == "" {
		file = DefaultCalibrationFile
	}
	clean := path.Clean(file)
	if path.IsAbs(file) || strings.Contains(file, "\\") || clean == ".." || strings.HasPrefix(clean, "../") || !fs.ValidPath(clean) {
		return cfg, nil, fmt.Errorf("%s: calibration: got %q, want a path inside the model's folder", ConfigFile, file)
	}
	cal, err := r.readLimited(name+"/"+clean, r.maxBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return cfg, nil, fmt.Errorf("%s: quantization: %s needs a calibration set, and %s/%s does not exist", ConfigFile, QuantInt8Static, name, clean)
		}
		return cfg, nil, fmt.Errorf("%s: calibration: %w", ConfigFile, err)
	}
	return cfg, cal, nil
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
