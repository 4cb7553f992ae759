package repository

import (
	"context"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch keeps the repository in step with its folder until ctx ends: it
// runs Sync when the file system reports a change under dir (the folder
// fsys reads, for fsnotify; "" for a folder that cannot be watched, such as
// the embedded models), every interval as a fallback (events can be missed
// on network file systems and in containers), and again after Settle while
// files are still settling. Sync errors are logged; the last good state
// keeps serving. synced, if set, runs after every Sync (the server updates
// its readiness there).
func (r *Repository) Watch(ctx context.Context, dir string, interval time.Duration, synced func()) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	var w *fsnotify.Watcher
	if dir != "" {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			r.log.Warn("cannot watch the model repository; rescanning periodically", "every", interval, "error", err)
		} else {
			defer w.Close()
			r.watchTree(w, dir)
			events, errs = w.Events, w.Errors
		}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// Events come in bursts (a copy writes many times): wait for a quiet
	// moment before syncing.
	const debounce = 50 * time.Millisecond
	var soon <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if ev.Has(fsnotify.Create) {
				r.watchTree(w, ev.Name) // a new model or version folder
			}
			soon = time.After(debounce)
			continue
		case err := <-errs:
			r.log.Warn("model repository watch", "error", err)
			continue
		case <-tick.C:
		case <-soon:
		}
		soon = nil
		waiting, err := r.Sync(ctx)
		if err != nil {
			r.log.Error("model repository sync failed; the loaded versions keep serving", "error", err)
		}
		if waiting {
			soon = time.After(r.settle)
		}
		if synced != nil {
			synced()
		}
	}
}

// watchTree adds root and the folders below it, two levels deep (models
// and their versions), to w.
func (r *Repository) watchTree(w *fsnotify.Watcher, root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if rel, _ := filepath.Rel(root, p); depth(rel) > 2 {
			return filepath.SkipDir
		}
		if err := w.Add(p); err != nil {
			r.log.Warn("cannot watch folder", "folder", p, "error", err)
		}
		return nil
	})
}

func depth(rel string) int {
	if rel == "." {
		return 0
	}
	n := 1
	for _, c := range rel {
		if c == filepath.Separator {
			n++
		}
	}
	return n
}
