package repository

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/corvidml/corvid/server/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

func TestValidateName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"digits", true}, {"a", true}, {"0model", true}, {"m.v2_b-c", true}, {strings.Repeat("a", 64), true},
		{"", false}, {"../x", false}, {"a/b", false}, {".hidden", false}, {"-x", false}, {"Digits", false},
		{strings.Repeat("a", 65), false}, {strings.Repeat("a", 1024), false}, {"a b", false}, {"a\x00", false},
	} {
		err := ValidateName(tt.name)
		if got := err == nil; got != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", tt.name, err)
		}
	}
}

// stub is a Servable that records Close and what it was loaded from.
type stub struct {
	closed bool
	req    LoadRequest
}

func (s *stub) Run(context.Context, map[string]*tensor.Tensor, []string) (map[string]*tensor.Tensor, error) {
	return nil, nil
}
func (s *stub) Inputs() []onnx.ValueInfo  { return nil }
func (s *stub) Outputs() []onnx.ValueInfo { return nil }
func (s *stub) MaxBatch() int             { return 1 }
func (s *stub) ExecutionMode() string     { return s.req.Config.Quantization }
func (s *stub) Close()                    { s.closed = true }

// loaderFor loads "good" files and fails on others; "panic" panics.
func loader() Loader {
	return func(_ context.Context, req LoadRequest) (Servable, error) {
		switch string(req.Model) {
		case "good":
			return &stub{req: req}, nil
		case "panic":
			panic("boom")
		}
		return nil, errors.New("not a model")
	}
}

func TestSyncResolve(t *testing.T) {
	all := &fstest.MapFile{Data: []byte("version_policy: all\n")}
	fsys := fstest.MapFS{
		"m/model.yaml":        all,
		"m/1/model.onnx":      {Data: []byte("good")},
		"m/2/model.onnx":      {Data: []byte("good")},
		"m/3/model.onnx":      {Data: []byte("bad")},
		"m/4/model.onnx":      {Data: []byte("panic")},
		"m/5/other.txt":       {Data: []byte("no model file")},
		"m/007/model.onnx":    {Data: []byte("good")}, // not canonical: skipped
		"m/0/model.onnx":      {Data: []byte("good")}, // not positive: skipped
		"m/x/model.onnx":      {Data: []byte("good")},
		"Bad/1/model.onnx":    {Data: []byte("good")}, // invalid name: skipped
		"big/1/model.onnx":    {Data: []byte(strings.Repeat("x", 100))},
		"loose-file.onnx":     {Data: []byte("good")},
		"failed/1/model.onnx": {Data: []byte("bad")},
		// latest 1 (the default): v2 is broken, so v1 serves in its place.
		"latest/1/model.onnx": {Data: []byte("good")},
		"latest/2/model.onnx": {Data: []byte("bad")},
	}
	r := New(fsys, loader(), Options{MaxModelBytes: 50})
	if ready, _ := r.Ready(); ready {
		t.Fatal("ready before loading")
	}
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	list := r.List()
	var names []string
	for _, m := range list {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, ","), "big,failed,latest,m"; got != want {
		t.Fatalf("models %s, want %s", got, want)
	}
	m, err := r.Status("m")
	if err != nil {
		t.Fatal(err)
	}
	wantStates := map[int64]State{1: StateAvailable, 2: StateAvailable, 3: StateFailed, 4: StateFailed, 5: StateFailed}
	if len(m.Versions) != len(wantStates) {
		t.Fatalf("versions %+v, want 1..5", m.Versions)
	}
	for _, v := range m.Versions {
		if v.State != wantStates[v.Version] {
			t.Errorf("v%d state %v (%v), want %v", v.Version, v.State, v.Err, wantStates[v.Version])
		}
	}
	if e := m.Versions[3].Err; e == nil || !strings.Contains(e.Error(), "panicked") {
		t.Errorf("v4 error %v, want the loader's panic", e)
	}
	if e := m.Versions[4].Err; e == nil || !strings.Contains(e.Error(), "no model.onnx") {
		t.Errorf("v5 error %v, want a missing file", e)
	}
	big, _ := r.Status("big")
	if e := big.Versions[0].Err; e == nil || !strings.Contains(e.Error(), "limit of 50 bytes") {
		t.Errorf("big error %v, want the size limit", e)
	}
	latest, _ := r.Status("latest")
	if len(latest.Versions) != 2 || latest.Versions[0].State != StateAvailable || latest.Versions[1].State != StateFailed {
		t.Errorf("latest: %+v, want v1 AVAILABLE and v2 FAILED", latest.Versions)
	}

	// Default routing picks the highest available version, not the highest.
	if l, err := r.Resolve("m", 0, "", ""); err != nil || l.Version != 2 {
		t.Errorf("Resolve(m) = %v, %v; want v2", l, err)
	} else {
		l.Release()
	}
	for _, tt := range []struct {
		name    string
		version int64
		label   string
		want    error
	}{
		{"m", 3, "", ErrUnavailable},
		{"m", 9, "", ErrNotFound},
		{"m", -1, "", ErrNotFound},
		{"m", 0, "stable", ErrNotFound},
		{"nope", 0, "", ErrNotFound},
		{"failed", 0, "", ErrUnavailable},
		{"../m", 0, "", ErrInvalidName},
	} {
		if _, err := r.Resolve(tt.name, tt.version, tt.label, ""); !errors.Is(err, tt.want) {
			t.Errorf("Resolve(%q, %d, %q) = %v, want %v", tt.name, tt.version, tt.label, err, tt.want)
		}
	}
	if ready, reason := r.Ready(); ready || !strings.Contains(reason, `"big"`) {
		t.Errorf("Ready() = %v %q, want false naming big", ready, reason)
	}
	r.Close()
	if _, err := r.Resolve("m", 1, "", ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Resolve after Close = %v, want ErrUnavailable", err)
	}
}

// TestLoadTimeout: a loader that runs past the limit fails the version
// with the reason; what it returns later is closed.
func TestLoadTimeout(t *testing.T) {
	release := make(chan struct{})
	late := &stub{}
	r := New(fstest.MapFS{"slow/1/model.onnx": {Data: []byte("good")}}, func(context.Context, LoadRequest) (Servable, error) {
		<-release
		return late, nil
	}, Options{LoadTimeout: 50 * time.Millisecond})
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Status("slow")
	if v := st.Versions[0]; v.State != StateFailed || v.Err == nil || !strings.Contains(v.Err.Error(), "longer than the limit of 50ms") {
		t.Errorf("slow load: %v %v", v.State, v.Err)
	}
	close(release)
	r.Close() // waits for the late loader and closes its result
	if !late.closed {
		t.Error("the servable a timed-out loader returned was not closed")
	}
}
