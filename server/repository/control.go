package repository

import (
	"context"
	"fmt"
)

// IndexEntry is one model of the repository, loaded or not.
type IndexEntry struct {
	ModelStatus
	// Unloaded is set when UnloadModel took the model out of service.
	Unloaded bool
}

// Index lists every model, sorted by name.
func (r *Repository) Index() []IndexEntry {
	list := r.List()
	out := make([]IndexEntry, len(list))
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i, ms := range list {
		out[i] = IndexEntry{ModelStatus: ms}
		if m := r.models[ms.Name]; m != nil {
			out[i].Unloaded = m.unwanted
		}
	}
	return out
}

// model returns the named model, or ErrNotFound.
func (r *Repository) lookup(name string) (*model, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.models[name]
	if m == nil {
		return nil, fmt.Errorf("model %q is not in the repository: %w", name, ErrNotFound)
	}
	return m, nil
}

// UnloadModel takes every version of a model out of service (each closes
// once its requests finish) and keeps the model unloaded, whatever its
// folder holds, until LoadModel.
func (r *Repository) UnloadModel(name string) (ModelStatus, error) {
	m, err := r.lookup(name)
	if err != nil {
		return ModelStatus{}, err
	}
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	m.unwanted = true
	for v, ver := range m.versions {
		r.unloadLocked(name, m, v, ver, false)
	}
	r.mu.Unlock()
	return r.Status(name)
}

// LoadModel puts a model back in service after UnloadModel, and loads
// whatever changed in its folder, without waiting for files to settle;
// it returns once the loads are done.
func (r *Repository) LoadModel(ctx context.Context, name string) (ModelStatus, error) {
	m, err := r.lookup(name)
	if err != nil {
		return ModelStatus{}, err
	}
	r.mu.Lock()
	m.unwanted = false
	r.mu.Unlock()
	if err := r.syncNow(ctx, name); err != nil {
		return ModelStatus{}, err
	}
	return r.Status(name)
}

// ReloadModel reloads every version of a model it wants, even if the files
// look unchanged (rewritten in place with the same size and time, say).
// Each version keeps serving until its new copy is AVAILABLE, and keeps
// serving if the copy fails.
func (r *Repository) ReloadModel(ctx context.Context, name string) (ModelStatus, error) {
	m, err := r.lookup(name)
	if err != nil {
		return ModelStatus{}, err
	}
	r.mu.Lock()
	for _, ver := range m.versions {
		ver.stamp, ver.failed = fileStamp{}, fileStamp{}
	}
	r.mu.Unlock()
	if err := r.syncNow(ctx, name); err != nil {
		return ModelStatus{}, err
	}
	return r.Status(name)
}

// syncNow runs a Sync in which the model's files need not settle.
func (r *Repository) syncNow(ctx context.Context, name string) error {
	r.syncMu.Lock()
	r.force = name
	r.syncMu.Unlock()
	_, err := r.Sync(ctx)
	return err
}
