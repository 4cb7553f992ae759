package repository

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corvidml/corvid/server/batching"
	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/routing"
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
	// ReloadErr is set when a new file for this version failed to load:
	// the version keeps serving the file it had.
	ReloadErr error
	// Labels are the labels that point to this version.
	Labels []string
	// Metadata is the version's meta.yaml, flattened to strings.
	Metadata map[string]string
	// TrafficWeight is the version's routing.traffic weight (0 without a
	// split).
	TrafficWeight int
	// Shadow holds the comparison figures when this version is the
	// model's shadow.
	Shadow *ShadowStatus
	// Batching holds the batcher's figures when requests to this version
	// are batched.
	Batching *batching.Stats
}

// batchedServable is a Servable whose requests go through a batcher.
type batchedServable interface {
	BatchingStats() batching.Stats
}

// ShadowStatus is a shadow version's share of traffic and figures.
type ShadowStatus struct {
	Sample float64
	routing.ShadowStats
}

// ModelStatus is a snapshot of a model and its versions, in ascending order.
type ModelStatus struct {
	Name     string
	Versions []VersionStatus
	// Config is the model.yaml in effect.
	Config ModelConfig
	// ConfigErr is set when model.yaml could not be used: the previous
	// settings (or the defaults) stay in effect.
	ConfigErr error
}

// loaded is one loaded file of a version, with the requests running on it.
type loaded struct {
	s        Servable
	inflight sync.WaitGroup
}

// version is the live record of one version; its fields are guarded by
// Repository.mu.
type version struct {
	status VersionStatus
	cur    *loaded   // what serves; nil unless AVAILABLE
	stamp  fileStamp // the file cur was loaded from
	key    string    // ModelConfig.loadKey it was loaded with
	// failed is the file that last failed to load: it is not tried again
	// until it changes.
	failed fileStamp
}

// servable is what serves the version, or nil.
func (v *version) servable() Servable {
	if v.cur == nil {
		return nil
	}
	return v.cur.s
}

// model is one model's versions and settings, guarded by Repository.mu.
type model struct {
	versions  map[int64]*version
	cfg       ModelConfig
	cfgStamp  fileStamp
	cfgErr    error
	cfgOK     bool // a model.yaml (or none) was accepted
	seen      bool // plan has applied its config once
	unwanted  bool // the control API unloaded it: no version loads until Load
	onDisk    bool
	lastFound []int64

	// Routing, from cfg: the traffic split (nil: the highest available
	// version serves) and the shadow (nil: none).
	split  *routing.Split
	shadow *routing.Shadow
}

// Repository holds every model found in a folder.
type Repository struct {
	fsys     fs.FS
	dir      string // on-disk folder of fsys, "" when there is none
	load     Loader
	maxBytes int64
	settle   time.Duration
	// loadTimeout bounds one version's load.
	loadTimeout time.Duration
	log         *slog.Logger

	mu     sync.RWMutex
	models map[string]*model
	loaded bool // the first Sync is over

	syncMu  sync.Mutex           // one Sync at a time
	pending map[string]pendingAt // files seen changing, by path (syncMu)
	force   string               // a model whose files need not settle in the next Sync (syncMu)
	drains  sync.WaitGroup       // versions draining before Close
}

// Options configures a Repository.
type Options struct {
	// MaxModelBytes bounds a model file; larger files FAIL without being read.
	MaxModelBytes int64
	// Dir is the folder fsys reads, when it is one on disk: external data
	// of models (ONNX external_data) is read from it through os.Root. Empty
	// refuses external data.
	Dir string
	// Settle is how long a new or changed file must keep its size and
	// modification time before a Sync after the first loads it, so that a
	// file still being copied is not loaded half-written. Default 500 ms.
	Settle time.Duration
	// LoadTimeout bounds loading one version (decoding, calibration,
	// compilation, warm-up); past it the version is FAILED. Default 10 min.
	LoadTimeout time.Duration
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
	if opts.Settle <= 0 {
		opts.Settle = 500 * time.Millisecond
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 10 * time.Minute
	}
	return &Repository{
		fsys: fsys, dir: opts.Dir, load: load, maxBytes: opts.MaxModelBytes, settle: opts.Settle, log: log,
		loadTimeout: opts.LoadTimeout,
		models:      map[string]*model{}, pending: map[string]pendingAt{},
	}
}

// Lease is a version handed to one request. Release must be called when the
// request is done with it: a version being replaced or unloaded waits for
// its leases before it closes.
type Lease struct {
	Servable
	// Version is the version number that serves.
	Version int64
	// Privacy and PayloadLog are the model's model.yaml settings (nil when
	// unset).
	Privacy    *PrivacyConfig
	PayloadLog *PayloadLogConfig
	l          *loaded
	shadow     *routing.Shadow
	once       sync.Once
}

// Release returns the lease.
func (l *Lease) Release() { l.once.Do(l.l.inflight.Done) }

// Mirror offers the request and the primary's outputs to the model's shadow
// version, if it has one; it never waits. inputs and primary must not be
// changed afterwards.
func (l *Lease) Mirror(inputs map[string]*tensor.Tensor, outputs []string, primary map[string]*tensor.Tensor) {
	if l.shadow != nil {
		l.shadow.Offer(inputs, outputs, primary)
	}
}

// Resolve returns a lease on the version that serves a request: the version
// asked for, the one a label points to, or, when the request names neither,
// the version routing.traffic picks for key (the same key, the same version,
// while the weights stay; no key, random by weight) or, without a split, the
// highest AVAILABLE version. A split's pick that cannot serve gives way to
// another version of the split that can, then to the highest available.
func (r *Repository) Resolve(name string, v int64, label, key string) (*Lease, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.models[name]
	if !ok {
		return nil, fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	if v < 0 {
		return nil, fmt.Errorf("model %q version %d: %w (versions are positive integers)", name, v, ErrNotFound)
	}
	if label != "" {
		lv, ok := m.cfg.Labels[label]
		if !ok {
			return nil, fmt.Errorf("model %q has no version labelled %q (labels: %s): %w", name, label, labelList(m.cfg.Labels), ErrNotFound)
		}
		if v != 0 && v != lv {
			return nil, fmt.Errorf("model %q: version %d asked for, but label %q points to version %d: %w", name, v, label, lv, ErrNotFound)
		}
		v = lv
	}
	if v > 0 {
		ver, ok := m.versions[v]
		if !ok {
			return nil, fmt.Errorf("model %q version %d: %w (versions: %s)", name, v, ErrNotFound, versionList(m.versions))
		}
		if ver.cur == nil {
			return nil, fmt.Errorf("model %q version %d is %s: %w", name, v, ver.status.State, ErrUnavailable)
		}
		return m.lease(ver.cur, v), nil
	}
	if m.split != nil {
		pick := m.split.Pick(key)
		if ver := m.versions[pick]; ver != nil && ver.cur != nil {
			return m.lease(ver.cur, pick), nil
		}
		for _, sv := range slices.Sorted(maps.Keys(m.split.Weights())) {
			if ver := m.versions[sv]; ver != nil && ver.cur != nil && m.split.Weights()[sv] > 0 {
				return m.lease(ver.cur, sv), nil
			}
		}
	}
	var best int64
	for n, ver := range m.versions {
		if ver.cur != nil && n > best && (m.shadow == nil || n != m.cfg.Routing.Shadow.Version) {
			best = n
		}
	}
	if best == 0 {
		return nil, fmt.Errorf("model %q has no available version (%s): %w", name, stateList(m.versions), ErrUnavailable)
	}
	return m.lease(m.versions[best].cur, best), nil
}

// lease must be called with r.mu held (read or write): a version is only
// retired under the write lock, after which no new lease can reach it. A
// request to any version but the shadow itself is mirrored to the shadow.
func (m *model) lease(l *loaded, v int64) *Lease {
	l.inflight.Add(1)
	out := &Lease{Servable: l.s, Version: v, l: l, Privacy: m.cfg.Privacy, PayloadLog: m.cfg.PayloadLog}
	if m.shadow != nil && v != m.cfg.Routing.Shadow.Version {
		out.shadow = m.shadow
	}
	return out
}

// closeShadow stops m's shadow, if any, in the background: Close waits
// for shadow runs, which take r.mu. Call with r.mu held for writing.
func (r *Repository) closeShadow(m *model) {
	if m.shadow == nil {
		return
	}
	sh := m.shadow
	m.shadow = nil
	r.drains.Add(1)
	go func() {
		defer r.drains.Done()
		sh.Close()
	}()
}

// StickyBy is the request metadata key whose value routes a model's
// requests ("routing_key", the request's own field, by default).
func (r *Repository) StickyBy(name string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if m := r.models[name]; m != nil && m.cfg.Routing != nil && m.cfg.Routing.StickyBy != "" {
		return m.cfg.Routing.StickyBy
	}
	return "routing_key"
}

// applyRouting builds the split and the shadow of m's config. Call with
// r.mu held for writing.
func (r *Repository) applyRouting(name string, m *model) {
	m.split = nil
	if w := m.cfg.TrafficWeights(); w != nil {
		m.split, _ = routing.NewSplit(w) // validated with the config
	}
	r.closeShadow(m)
	if m.cfg.Routing == nil || m.cfg.Routing.Shadow == nil {
		return
	}
	sv := m.cfg.Routing.Shadow.Version
	run := func(ctx context.Context, in map[string]*tensor.Tensor, out []string) (map[string]*tensor.Tensor, error) {
		l, err := r.Resolve(name, sv, "", "")
		if err != nil {
			return nil, err
		}
		defer l.Release()
		return l.Run(ctx, in, out)
	}
	m.shadow = routing.NewShadow(run, m.cfg.Routing.Shadow.routingShadow(), routing.Compare)
}

func labelList(labels map[string]int64) string {
	if len(labels) == 0 {
		return "none"
	}
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
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
	if len(versions) == 0 {
		return "no versions"
	}
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
	m, ok := r.models[name]
	if !ok {
		return ModelStatus{}, fmt.Errorf("model %q: %w", name, ErrNotFound)
	}
	return snapshot(name, m), nil
}

func snapshot(name string, m *model) ModelStatus {
	ms := ModelStatus{Name: name, Config: m.cfg, ConfigErr: m.cfgErr}
	weights := m.cfg.TrafficWeights()
	for _, v := range sortedVersions(m.versions) {
		ver := m.versions[v]
		st := ver.status
		st.TrafficWeight = weights[v]
		if b, ok := ver.servable().(batchedServable); ok {
			stats := b.BatchingStats()
			st.Batching = &stats
		}
		if m.shadow != nil && v == m.cfg.Routing.Shadow.Version {
			st.Shadow = &ShadowStatus{Sample: m.shadow.Config().Sample, ShadowStats: m.shadow.Stats()}
		}
		st.Labels = nil
		for label, lv := range m.cfg.Labels {
			if lv == v {
				st.Labels = append(st.Labels, label)
			}
		}
		slices.Sort(st.Labels)
		ms.Versions = append(ms.Versions, st)
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

// Ready reports whether the first Sync is over and every model has at least
// one AVAILABLE version; when it is not, the reason says what is missing.
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
		m := r.models[n]
		if m.unwanted {
			continue // unloaded on purpose through the control API
		}
		if !slices.ContainsFunc(sortedVersions(m.versions), func(v int64) bool { return m.versions[v].cur != nil }) {
			return false, fmt.Sprintf("model %q has no available version (%s)", n, stateList(m.versions))
		}
	}
	return true, ""
}

// retire takes a loaded file out of service: it closes once the requests
// holding leases on it have finished. Call with r.mu held for writing, after
// the version no longer points to l. done, if set, runs after the close,
// with r.mu held.
func (r *Repository) retire(l *loaded, done func()) {
	r.drains.Add(1)
	go func() {
		defer r.drains.Done()
		l.inflight.Wait()
		l.s.Close()
		if done != nil {
			r.mu.Lock()
			done()
			r.mu.Unlock()
		}
	}()
}

// Close unloads every version, waiting for the requests running on them.
func (r *Repository) Close() {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	for _, m := range r.models {
		r.closeShadow(m)
		for _, v := range m.versions {
			if v.cur != nil {
				r.retire(v.cur, nil)
				v.cur = nil
				v.status.State = StateUnloaded
			}
		}
	}
	r.mu.Unlock()
	r.drains.Wait()
}
