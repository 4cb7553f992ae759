package repository

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// Errors the API layer maps to status codes.
var (
	// ErrNotFound: no such model, version or label.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: the model exists but no version it asked for can serve
	// yet (still loading, or failed).
	ErrUnavailable = errors.New("unavailable")
	// ErrInvalidName: a model name that does not match NamePattern.
	ErrInvalidName = errors.New("invalid model name")
)

// NamePattern is the form every model name must have. Names never become paths
// unless they match it, so "../x" or "a/b" cannot reach the file system.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ModelFile is the file name of a version's model inside its folder.
const ModelFile = "model.onnx"

// ValidateName reports whether name is a valid model name.
func ValidateName(name string) error {
	if !NamePattern.MatchString(name) {
		shown := name
		if len(shown) > 70 {
			shown = shown[:64] + "..."
		}
		return fmt.Errorf("%w %q: want lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 characters", ErrInvalidName, shown)
	}
	return nil
}

// Servable is a loaded model version that can run requests. It is safe for
// concurrent use.
type Servable interface {
	Run(ctx context.Context, inputs map[string]*tensor.Tensor, outputs []string) (map[string]*tensor.Tensor, error)
	Inputs() []onnx.ValueInfo
	Outputs() []onnx.ValueInfo
	MaxBatch() int
	// ExecutionMode is how the model computes: fp32, int8-dynamic,
	// int8-static, or int8-prequantized (a model quantized before export).
	ExecutionMode() string
	Close()
}

// Loader turns a version's files into a Servable.
type Loader func(ctx context.Context, req LoadRequest) (Servable, error)

// State is where a version is in its life cycle.
type State int

// The states of a version, in the order a version normally goes through them.
const (
	StateLoading State = iota + 1
	StateAvailable
	StateUnloading
	StateUnloaded
	StateFailed
)

func (s State) String() string {
	switch s {
	case StateLoading:
		return "LOADING"
	case StateAvailable:
		return "AVAILABLE"
	case StateUnloading:
		return "UNLOADING"
	case StateUnloaded:
		return "UNLOADED"
	case StateFailed:
		return "FAILED"
	}
	return "UNKNOWN"
}

// VersionStatus is a snapshot of one version.
type VersionStatus struct {
	Version      int64
	State        State
	Err          error // set when State is StateFailed
	SHA256       string
	LoadedAt     time.Time
	LoadDuration time.Duration
	Inputs       []onnx.ValueInfo
	Outputs      []onnx.ValueInfo
	MaxBatch     int
	// ExecutionMode is the Servable's (set once AVAILABLE).
	ExecutionMode string
}

// ModelStatus is a snapshot of a model and its versions, in ascending order.
type ModelStatus struct {
	Name     string
	Versions []VersionStatus
}

// version is the live record of one version; mutable fields are guarded by
// Repository.mu.
type version struct {
	status   VersionStatus
	servable Servable
}

// Repository holds every model found in a folder.
type Repository struct {
	fsys     fs.FS
	load     Loader
	maxBytes int64
	log      *slog.Logger

	mu     sync.RWMutex
	models map[string]map[int64]*version
	loaded bool // the initial load pass is over
}

// Options configures a Repository.
type Options struct {
	// MaxModelBytes bounds a model file; larger files FAIL without being read.
	MaxModelBytes int64
	// Logger receives load events; nil discards them.
	Logger *slog.Logger
}

// New returns a repository over fsys, which holds <model>/<version>/model.onnx.
func New(fsys fs.FS, load Loader, opts Options) *Repository {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxModelBytes <= 0 {
		opts.MaxModelBytes = 1 << 30
	}
	return &Repository{fsys: fsys, load: load, maxBytes: opts.MaxModelBytes, log: log, models: map[string]map[int64]*version{}}
}

// Scan discovers models and versions and records each new version as LOADING.
// Folders whose names are not valid model names or positive version numbers
// are skipped with a warning.
func (r *Repository) Scan() error {
	entries, err := fs.ReadDir(r.fsys, ".")
	if err != nil {
		return fmt.Errorf("read model repository: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if err := ValidateName(name); err != nil {
			r.log.Warn("skipping folder in model repository", "folder", name, "reason", err.Error())
			continue
		}
		vents, err := fs.ReadDir(r.fsys, name)
		if err != nil {
			r.log.Warn("skipping unreadable model folder", "model", name, "error", err)
			continue
		}
		for _, ve := range vents {
			if !ve.IsDir() {
				continue
			}
			v, err := strconv.ParseInt(ve.Name(), 10, 64)
			if err != nil || v < 1 || strconv.FormatInt(v, 10) != ve.Name() {
				r.log.Warn("skipping folder that is not a version number", "model", name, "folder", ve.Name())
				continue
			}
			versions := r.models[name]
			if versions == nil {
				versions = map[int64]*version{}
				r.models[name] = versions
			}
			if _, ok := versions[v]; !ok {
				versions[v] = &version{status: VersionStatus{Version: v, State: StateLoading}}
			}
		}
	}
	return nil
}

// LoadPending loads every version that is LOADING, one at a time (so that
// loading cannot take all memory at once), and marks the initial pass done.
func (r *Repository) LoadPending(ctx context.Context) {
	for _, p := range r.pending() {
		if ctx.Err() != nil {
			return
		}
		r.loadVersion(ctx, p.name, p.version)
	}
	r.mu.Lock()
	r.loaded = true
	r.mu.Unlock()
}

type ref struct {
	name    string
	version int64
}

func (r *Repository) pending() []ref {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []ref
	for name, versions := range r.models {
		for v, ver := range versions {
			if ver.status.State == StateLoading {
				out = append(out, ref{name, v})
			}
		}
	}
	slices.SortFunc(out, func(a, b ref) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.version, b.version))
	})
	return out
}

func (r *Repository) loadVersion(ctx context.Context, name string, v int64) {
	start := time.Now()
	sum, servable, err := r.read(ctx, name, v)
	took := time.Since(start)

	r.mu.Lock()
	defer r.mu.Unlock()
	ver := r.models[name][v]
	ver.status.SHA256 = sum
	ver.status.LoadedAt = time.Now()
	ver.status.LoadDuration = took
	if err != nil {
		ver.status.State = StateFailed
		ver.status.Err = err
		r.log.Error("model version failed to load", "model", name, "version", v, "error", err.Error())
		return
	}
	ver.servable = servable
	ver.status.State = StateAvailable
	ver.status.Inputs = servable.Inputs()
	ver.status.Outputs = servable.Outputs()
	ver.status.MaxBatch = servable.MaxBatch()
	ver.status.ExecutionMode = servable.ExecutionMode()
	r.log.Info("model version available", "model", name, "version", v, "sha256", sum, "load_time", took)
}

// read loads one version's file, returning its hash even when loading fails,
// so a FAILED version can still be identified.
func (r *Repository) read(ctx context.Context, name string, v int64) (string, Servable, error) {
	data, err := r.readLimited(name+"/"+strconv.FormatInt(v, 10)+"/"+ModelFile, r.maxBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("version folder has no %s", ModelFile)
	}
	if err != nil {
		return "", nil, err
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	cfg, cal, err := r.readConfig(name)
	if err != nil {
		return sum, nil, err
	}
	servable, err := r.safeLoad(ctx, LoadRequest{Model: data, Config: cfg, Calibration: cal})
	return sum, servable, err
}

// safeLoad calls the loader, turning a panic into an error: a bad model file
// must never take the server down.
func (r *Repository) safeLoad(ctx context.Context, req LoadRequest) (s Servable, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("loader panicked: %v", p)
		}
	}()
	return r.load(ctx, req)
}

// Resolve returns the servable for a request. version 0 and an empty label
// select the highest AVAILABLE version. Labels are not defined yet, so any
// label is NotFound.
func (r *Repository) Resolve(name string, v int64, label string) (Servable, int64, error) {
	if err := ValidateName(name); err != nil {
		return nil, 0, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	versions, ok := r.models[name]
	if !ok {
		return nil, 0, fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	if label != "" {
		return nil, 0, fmt.Errorf("model %q has no version labelled %q: %w", name, label, ErrNotFound)
	}
	if v < 0 {
		return nil, 0, fmt.Errorf("model %q version %d: %w (versions are positive integers)", name, v, ErrNotFound)
	}
	if v > 0 {
		ver, ok := versions[v]
		if !ok {
			return nil, 0, fmt.Errorf("model %q version %d: %w (versions: %s)", name, v, ErrNotFound, versionList(versions))
		}
		if ver.status.State != StateAvailable {
			return nil, 0, fmt.Errorf("model %q version %d is %s: %w", name, v, ver.status.State, ErrUnavailable)
		}
		return ver.servable, v, nil
	}
	var best int64
	for n, ver := range versions {
		if ver.status.State == StateAvailable && n > best {
			best = n
		}
	}
	if best == 0 {
		return nil, 0, fmt.Errorf("model %q has no available version (%s): %w", name, stateList(versions), ErrUnavailable)
	}
	return versions[best].servable, best, nil
}

func sortedVersions(versions map[int64]*version) []int64 {
	vs := make([]int64, 0, len(versions))
	for v := range versions {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// versionList and stateList describe a model's versions for error messages:
// "1, 2" and "v1 AVAILABLE, v2 FAILED".
func versionList(versions map[int64]*version) string {
	return describeVersions(versions, func(v int64, _ *version) string { return strconv.FormatInt(v, 10) })
}

func stateList(versions map[int64]*version) string {
	return describeVersions(versions, func(v int64, ver *version) string { return fmt.Sprintf("v%d %s", v, ver.status.State) })
}

func describeVersions(versions map[int64]*version, f func(int64, *version) string) string {
	parts := make([]string, 0, len(versions))
	for _, v := range sortedVersions(versions) {
		parts = append(parts, f(v, versions[v]))
	}
	return strings.Join(parts, ", ")
}

// Status reports one model.
func (r *Repository) Status(name string) (ModelStatus, error) {
	if err := ValidateName(name); err != nil {
		return ModelStatus{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	versions, ok := r.models[name]
	if !ok {
		return ModelStatus{}, fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	return snapshot(name, versions), nil
}

func snapshot(name string, versions map[int64]*version) ModelStatus {
	ms := ModelStatus{Name: name}
	for _, v := range sortedVersions(versions) {
		ms.Versions = append(ms.Versions, versions[v].status)
	}
	return ms
}

// List reports every model, sorted by name.
func (r *Repository) List() []ModelStatus {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.models))
	for n := range r.models {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]ModelStatus, 0, len(names))
	for _, n := range names {
		out = append(out, snapshot(n, r.models[n]))
	}
	return out
}

// Ready reports whether the initial load pass is over and every model has at
// least one AVAILABLE version; when it is not, the reason says what is missing.
// Like Triton's strict readiness, a model that cannot serve keeps the server
// from reporting ready, so a broken rollout is caught by its readiness probe.
func (r *Repository) Ready() (bool, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !r.loaded {
		return false, "models are loading"
	}
	if len(r.models) == 0 {
		return false, "the model repository has no models"
	}
	names := make([]string, 0, len(r.models))
	for n := range r.models {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ok := false
		for _, v := range r.models[n] {
			if v.status.State == StateAvailable {
				ok = true
				break
			}
		}
		if !ok {
			return false, fmt.Sprintf("model %q has no available version (%s)", n, stateList(r.models[n]))
		}
	}
	return true, ""
}

// Close unloads every version. Requests must have drained before it is called.
func (r *Repository) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, versions := range r.models {
		for _, v := range versions {
			if v.servable != nil {
				v.servable.Close()
				v.servable = nil
			}
			if v.status.State == StateAvailable {
				v.status.State = StateUnloaded
			}
		}
	}
}
