package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Sync brings the loaded versions in line with the folder: new versions
// load (each in turn, so that loading cannot take all memory at once),
// changed files and model.yaml changes that affect compilation reload (the
// new file loads beside the old, which keeps serving until the swap and
// then drains), removed versions and models unload once their requests are
// done. A version that fails to load is FAILED with its error, or, when it
// was serving, keeps serving with the error in ReloadErr: a bad file never
// replaces a good one.
//
// After the first Sync, a new or changed file loads only once its size and
// modification time have stayed the same for Options.Settle, so a file still
// being copied is not loaded half-written (writing elsewhere and renaming
// into place is better still). Sync reports whether such files are waiting:
// a later Sync will load them.
func (r *Repository) Sync(ctx context.Context) (waiting bool, err error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	disk, err := r.scanDisk()
	if err != nil {
		return false, err
	}
	r.mu.RLock()
	first := !r.loaded
	r.mu.RUnlock()
	force := r.force
	r.force = ""
	configs := r.readConfigs(disk)

	// Loading one version can change what is wanted (a newest version
	// that fails makes way for the one before it), so decide again after
	// each round of loads.
	for range 64 {
		if ctx.Err() != nil {
			break
		}
		jobs, wait := r.plan(disk, configs, first, force, time.Now())
		waiting = wait
		if len(jobs) == 0 {
			break
		}
		for _, j := range jobs {
			if ctx.Err() != nil {
				break
			}
			r.loadOne(ctx, j)
		}
	}
	r.mu.Lock()
	r.loaded = true
	r.mu.Unlock()
	return waiting, nil
}

// fileStamp identifies a file's contents cheaply: a changed file changes
// its size or modification time.
type fileStamp struct {
	exists bool
	size   int64
	mod    time.Time
}

type pendingAt struct {
	stamp fileStamp
	first time.Time
}

// diskVersion is a version folder as found: its model file (model.onnx or
// the one an MLflow MLmodel names) and that file's stamp.
type diskVersion struct {
	file  string
	stamp fileStamp
	err   error // the folder holds no usable model file
}

type diskModel struct {
	cfg      fileStamp
	versions map[int64]diskVersion
}

func (r *Repository) stat(p string) fileStamp {
	fi, err := fs.Stat(r.fsys, p)
	if err != nil || fi.IsDir() {
		return fileStamp{}
	}
	return fileStamp{exists: true, size: fi.Size(), mod: fi.ModTime()}
}

// scanDisk lists models and versions. Folders whose names are not valid
// model names or positive version numbers are skipped with a warning.
func (r *Repository) scanDisk() (map[string]*diskModel, error) {
	entries, err := fs.ReadDir(r.fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read model repository: %w", err)
	}
	out := map[string]*diskModel{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
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
		dm := &diskModel{cfg: r.stat(name + "/" + ConfigFile), versions: map[int64]diskVersion{}}
		for _, ve := range vents {
			if !ve.IsDir() {
				continue
			}
			v, err := strconv.ParseInt(ve.Name(), 10, 64)
			if err != nil || v < 1 || strconv.FormatInt(v, 10) != ve.Name() {
				if !strings.HasPrefix(ve.Name(), ".") {
					r.log.Warn("skipping folder that is not a version number", "model", name, "folder", ve.Name())
				}
				continue
			}
			dm.versions[v] = r.findModelFile(name + "/" + ve.Name())
		}
		out[name] = dm
	}
	return out, nil
}

// MLflowFile is the descriptor of an MLflow model directory; with the onnx
// flavor it names the model file (flavors.onnx.data).
const MLflowFile = "MLmodel"

// findModelFile finds a version folder's model: model.onnx, or the file an
// MLflow MLmodel's onnx flavor names.
func (r *Repository) findModelFile(dir string) diskVersion {
	if st := r.stat(dir + "/" + ModelFile); st.exists {
		return diskVersion{file: dir + "/" + ModelFile, stamp: st}
	}
	data, err := r.readLimited(dir+"/"+MLflowFile, maxConfigBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return diskVersion{err: fmt.Errorf("version folder has no %s (nor an MLflow %s)", ModelFile, MLflowFile)}
	}
	if err != nil {
		return diskVersion{err: err}
	}
	var ml struct {
		Flavors struct {
			ONNX *struct {
				Data string `json:"data"`
			} `json:"onnx"`
		} `json:"flavors"`
	}
	if err := yaml.Unmarshal(data, &ml); err != nil {
		return diskVersion{err: fmt.Errorf("%s: %w", MLflowFile, err)}
	}
	if ml.Flavors.ONNX == nil || ml.Flavors.ONNX.Data == "" {
		return diskVersion{err: fmt.Errorf("%s has no onnx flavor (flavors.onnx.data): Corvid serves ONNX models", MLflowFile)}
	}
	rel := path.Clean(ml.Flavors.ONNX.Data)
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || !fs.ValidPath(rel) {
		return diskVersion{err: fmt.Errorf("%s: flavors.onnx.data %q is not a path inside the version folder", MLflowFile, ml.Flavors.ONNX.Data)}
	}
	st := r.stat(dir + "/" + rel)
	if !st.exists {
		return diskVersion{err: fmt.Errorf("%s names %s, which does not exist", MLflowFile, rel)}
	}
	return diskVersion{file: dir + "/" + rel, stamp: st}
}

type configRead struct {
	cfg ModelConfig
	err error
}

// readConfigs reads the model.yaml files that changed since they were last
// read.
func (r *Repository) readConfigs(disk map[string]*diskModel) map[string]configRead {
	out := map[string]configRead{}
	for name, d := range disk {
		r.mu.RLock()
		m := r.models[name]
		same := m != nil && m.cfgStamp == d.cfg
		r.mu.RUnlock()
		if same {
			continue
		}
		cfg, err := r.readConfig(name)
		out[name] = configRead{cfg, err}
	}
	return out
}

// loadJob is one version to load.
type loadJob struct {
	name  string
	m     *model
	v     int64
	file  string
	stamp fileStamp
	cfg   ModelConfig
}

// plan applies the folder's state and configs to r.models: it records
// config changes, unloads what is no longer wanted, and returns the
// versions to load. wait reports files still settling.
func (r *Repository) plan(disk map[string]*diskModel, configs map[string]configRead, first bool, force string, now time.Time) (jobs []loadJob, wait bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, m := range r.models {
		if disk[name] == nil {
			m.onDisk = false
			r.closeShadow(m)
			for v, ver := range m.versions {
				r.unloadLocked(name, m, v, ver, true)
			}
			r.dropIfGone(name, m)
		}
	}
	for name, d := range disk {
		m := r.models[name]
		if m == nil {
			m = &model{versions: map[int64]*version{}, cfg: ModelConfig{Quantization: QuantFP32}}
			r.models[name] = m
		}
		m.onDisk = true
		found := slices.Sorted(maps.Keys(d.versions))
		if c, ok := configs[name]; ok && (m.cfgStamp != d.cfg || !m.seen) {
			m.cfgStamp = d.cfg
			if c.err == nil {
				c.err = checkVersionsExist(&c.cfg, found)
			}
			if c.err != nil {
				m.cfgErr = c.err
				r.log.Error("model.yaml rejected; the previous settings stay", "model", name, "error", c.err.Error())
			} else {
				m.cfg, m.cfgErr, m.cfgOK = c.cfg, nil, true
				r.applyRouting(name, m)
			}
		}
		m.seen = true
		for v, ver := range m.versions {
			if _, ok := d.versions[v]; !ok {
				r.unloadLocked(name, m, v, ver, true)
			}
		}
		wanted := r.wanted(m, d, found)
		// A version the policy no longer wants keeps serving until one it
		// wants is AVAILABLE (TF Serving's availability-preserving policy):
		// a new version still loading, or failing, never leaves the model
		// without one.
		replaced := m.unwanted
		for v := range wanted {
			if ver := m.versions[v]; ver != nil && ver.cur != nil {
				replaced = true
			}
		}
		for _, v := range found {
			dv := d.versions[v]
			ver := m.versions[v]
			if !wanted[v] {
				if ver != nil && ver.cur != nil && replaced {
					r.unloadLocked(name, m, v, ver, false)
				}
				continue
			}
			if ver == nil {
				ver = &version{status: VersionStatus{Version: v, State: StateLoading}}
				m.versions[v] = ver
			}
			if dv.err != nil {
				if ver.cur == nil {
					ver.status.State, ver.status.Err = StateFailed, dv.err
				}
				continue
			}
			if !m.cfgOK {
				// No model.yaml of this model was ever accepted: serving
				// it with the defaults instead could surprise.
				ver.status.State, ver.status.Err = StateFailed, m.cfgErr
				continue
			}
			stale := ver.cur == nil || dv.stamp != ver.stamp || ver.key != m.cfg.loadKey()
			if !stale || dv.stamp == ver.failed && ver.key == m.cfg.loadKey() {
				delete(r.pending, dv.file)
				continue
			}
			if !first && name != force && !r.settled(dv.file, dv.stamp, now) {
				wait = true
				continue
			}
			if ver.cur == nil && ver.status.State != StateFailed {
				ver.status.State = StateLoading
			}
			jobs = append(jobs, loadJob{name: name, m: m, v: v, file: dv.file, stamp: dv.stamp, cfg: m.cfg})
		}
		m.lastFound = found
	}
	return jobs, wait
}

// checkVersionsExist refuses a config whose labels, traffic split or
// shadow name a version the model's folder does not have: a label may only
// point to a version that can be loaded.
func checkVersionsExist(cfg *ModelConfig, found []int64) error {
	for _, label := range slices.Sorted(maps.Keys(cfg.Labels)) {
		if v := cfg.Labels[label]; !slices.Contains(found, v) {
			return fmt.Errorf("%s: labels.%s: version %d is not in the model's folder (versions: %v)", ConfigFile, label, v, found)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(cfg.TrafficWeights())) {
		if !slices.Contains(found, v) {
			return fmt.Errorf("%s: routing.traffic: version %d is not in the model's folder (versions: %v)", ConfigFile, v, found)
		}
	}
	if r := cfg.Routing; r != nil && r.Shadow != nil && !slices.Contains(found, r.Shadow.Version) {
		return fmt.Errorf("%s: routing.shadow.version: version %d is not in the model's folder (versions: %v)", ConfigFile, r.Shadow.Version, found)
	}
	return nil
}

// wanted is the set of versions to load: the version policy's choice among
// the versions found, not counting those whose current file failed (so that
// a broken newest version leaves the one before it serving), plus every
// version a label, the traffic split or the shadow names.
func (r *Repository) wanted(m *model, d *diskModel, found []int64) map[int64]bool {
	if m.unwanted {
		return nil
	}
	var eligible, broken []int64
	var shadow int64
	if m.cfg.Routing != nil && m.cfg.Routing.Shadow != nil {
		shadow = m.cfg.Routing.Shadow.Version // loaded below; it never serves callers
	}
	for _, v := range found {
		if v == shadow {
			continue
		}
		ver := m.versions[v]
		dv := d.versions[v]
		if dv.err != nil || ver != nil && ver.cur == nil && ver.failed == dv.stamp && ver.failed.exists && ver.key == m.cfg.loadKey() {
			broken = append(broken, v)
		} else {
			eligible = append(eligible, v)
		}
	}
	p := m.cfg.VersionPolicy
	var w map[int64]bool
	if p.All || len(p.Specific) > 0 {
		w = p.wants(found) // asked for by number: broken ones show FAILED
	} else {
		w = p.wants(eligible)
		// Broken versions newer than what serves stay on show, FAILED
		// (they are not loaded again until their files change).
		oldest := int64(1<<63 - 1)
		for v := range w {
			oldest = min(oldest, v)
		}
		for _, v := range broken {
			if v > oldest || len(w) == 0 {
				w[v] = true
			}
		}
	}
	refs := make([]int64, 0, len(m.cfg.Labels)+4)
	for _, v := range m.cfg.Labels {
		refs = append(refs, v)
	}
	for v := range m.cfg.TrafficWeights() {
		refs = append(refs, v)
	}
	if m.cfg.Routing != nil && m.cfg.Routing.Shadow != nil {
		refs = append(refs, m.cfg.Routing.Shadow.Version)
	}
	for _, v := range refs {
		if slices.Contains(found, v) {
			w[v] = true
		}
	}
	return w
}

// settled reports whether file has kept stamp for r.settle.
func (r *Repository) settled(file string, stamp fileStamp, now time.Time) bool {
	p, ok := r.pending[file]
	if !ok || p.stamp != stamp {
		r.pending[file] = pendingAt{stamp: stamp, first: now}
		return false
	}
	return now.Sub(p.first) >= r.settle
}

// unloadLocked takes a version out of service; its file closes once its
// requests are done. remove drops the version's record (its folder is
// gone). Call with r.mu held for writing.
func (r *Repository) unloadLocked(name string, m *model, v int64, ver *version, remove bool) {
	if remove {
		delete(m.versions, v)
	}
	if ver.cur == nil {
		if !remove && ver.status.State != StateFailed {
			ver.status.State = StateUnloaded
		}
		return
	}
	l := ver.cur
	ver.cur = nil
	ver.status.State = StateUnloading
	r.log.Info("model version unloading", "model", name, "version", v)
	r.retire(l, func() {
		if ver.cur == nil && ver.status.State == StateUnloading {
			ver.status.State = StateUnloaded
		}
		r.dropIfGone(name, m)
	})
}

// dropIfGone forgets a model whose folder is gone once its versions are.
func (r *Repository) dropIfGone(name string, m *model) {
	if !m.onDisk && len(m.versions) == 0 && r.models[name] == m {
		delete(r.models, name)
	}
}

// loadOne loads a version's file and, if it loads, swaps it in.
func (r *Repository) loadOne(ctx context.Context, j loadJob) {
	start := time.Now()
	sum, meta, servable, err := r.readVersion(ctx, j)
	took := time.Since(start)

	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, j.file)
	ver := j.m.versions[j.v]
	if ver == nil || r.models[j.name] != j.m {
		if servable != nil {
			servable.Close() // unloaded while it loaded
		}
		return
	}
	if err != nil {
		ver.failed = j.stamp
		ver.key = j.cfg.loadKey()
		if ver.cur != nil {
			ver.status.ReloadErr = err
			r.log.Error("new file for a serving version failed to load; the version keeps serving", "model", j.name, "version", j.v, "error", err.Error())
			return
		}
		ver.status = VersionStatus{Version: j.v, State: StateFailed, Err: err, SHA256: sum, LoadedAt: time.Now(), LoadDuration: took}
		r.log.Error("model version failed to load", "model", j.name, "version", j.v, "error", err.Error())
		return
	}
	old := ver.cur
	ver.cur = &loaded{s: servable}
	ver.stamp, ver.key, ver.failed = j.stamp, j.cfg.loadKey(), fileStamp{}
	ver.status = VersionStatus{
		Version: j.v, State: StateAvailable, SHA256: sum, LoadedAt: time.Now(), LoadDuration: took,
		Inputs: servable.Inputs(), Outputs: servable.Outputs(), MaxBatch: servable.MaxBatch(),
		ExecutionMode: servable.ExecutionMode(), Metadata: meta,
	}
	if old != nil {
		r.retire(old, nil)
	}
	r.log.Info("model version available", "model", j.name, "version", j.v, "sha256", sum, "load_time", took, "replaced", old != nil)
}

// MetaFile is a version's optional reproducibility record beside its
// model: training data hash, parameters, metrics, source commit.
const MetaFile = "meta.yaml"

// readVersion reads a version's files and loads them. It returns the model
// file's hash even when loading fails, so a FAILED version can be
// identified.
func (r *Repository) readVersion(ctx context.Context, j loadJob) (string, map[string]string, Servable, error) {
	data, err := r.readLimited(j.file, r.maxBytes)
	if err != nil {
		return "", nil, nil, err
	}
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	cal, err := r.readCalibration(j.name, j.cfg)
	if err != nil {
		return sum, nil, nil, err
	}
	meta, err := r.readMeta(path.Dir(j.file))
	if err != nil {
		return sum, nil, nil, err
	}
	req := LoadRequest{Model: data, Config: j.cfg, Calibration: cal}
	if r.dir != "" {
		files := &versionFiles{dir: filepath.Join(r.dir, filepath.FromSlash(path.Dir(j.file)))}
		defer files.close()
		req.External = files
	}
	servable, err := r.safeLoad(ctx, req)
	return sum, meta, servable, err
}

// readMeta reads meta.yaml into flat strings: scalars as written, lists and
// maps as JSON.
func (r *Repository) readMeta(dir string) (map[string]string, error) {
	data, err := r.readLimited(dir+"/"+MetaFile, maxConfigBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", MetaFile, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			out[k] = v
		default:
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
	}
	return out, nil
}

// safeLoad calls the loader, turning a panic into an error (a bad model
// file must never take the server down) and bounding its time: past
// Options.LoadTimeout the version fails, the loader's context is cancelled,
// and whatever it still returns is closed.
func (r *Repository) safeLoad(ctx context.Context, req LoadRequest) (Servable, error) {
	ctx, cancel := context.WithTimeout(ctx, r.loadTimeout)
	type result struct {
		s   Servable
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{nil, fmt.Errorf("loader panicked: %v", p)}
			}
		}()
		s, err := r.load(ctx, req)
		done <- result{s, err}
	}()
	select {
	case res := <-done:
		cancel()
		return res.s, res.err
	case <-ctx.Done():
		cancel()
		r.drains.Add(1)
		go func() { // the loader may not watch ctx: close what it returns
			defer r.drains.Done()
			if res := <-done; res.s != nil {
				res.s.Close()
			}
		}()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("loading took longer than the limit of %v (load_timeout)", r.loadTimeout)
		}
		return nil, ctx.Err()
	}
}
