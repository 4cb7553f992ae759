package npz

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/corvidml/corvid/server/tensor"
)

// MaxArrays bounds the entries of an archive.
const MaxArrays = 1 << 12

// Read reads every array of the .npz archive in r (size bytes long), keyed
// by name without the ".npy" suffix, as np.load names them. maxBytes bounds
// the data of all arrays together (0 means DefaultMaxBytes).
func Read(r io.ReaderAt, size, maxBytes int64) (map[string]*tensor.Tensor, error) {
	budget := limitOrDefault(maxBytes)
	var head [6]byte
	if n, _ := r.ReadAt(head[:], 0); n == len(head) {
		switch {
		case bytes.Equal(head[:], npyMagic):
			return nil, fmt.Errorf("%w: this is a single .npy array, not an .npz archive; save arrays with np.savez(path, name=array)", ErrFormat)
		case head[0] == 0x80:
			return nil, fmt.Errorf("%w: this is a Python pickle, not an .npz archive; pickles are never loaded", ErrFormat)
		}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: not a zip archive: %v", ErrFormat, err)
	}
	if len(zr.File) > MaxArrays {
		return nil, fmt.Errorf("%w: archive has %d entries, more than the limit of %d", ErrFormat, len(zr.File), MaxArrays)
	}
	out := make(map[string]*tensor.Tensor, len(zr.File))
	for _, f := range zr.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok {
			return nil, fmt.Errorf("%w: archive entry %q is not a .npy array", ErrFormat, f.Name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: array %q appears twice in the archive", ErrFormat, name)
		}
		t, n, err := readEntry(f, name, budget)
		if err != nil {
			return nil, err
		}
		budget -= n
		out[name] = t
	}
	return out, nil
}

func readEntry(f *zip.File, name string, budget int64) (*tensor.Tensor, int64, error) {
	rc, err := f.Open()
	if err != nil {
		if errors.Is(err, zip.ErrAlgorithm) {
			return nil, 0, fmt.Errorf("%w: array %q: compression method %d; want stored (np.savez) or deflated (np.savez_compressed)", ErrUnsupported, name, f.Method)
		}
		return nil, 0, fmt.Errorf("%w: array %q: %v", ErrFormat, name, err)
	}
	defer rc.Close()
	return readNPY(rc, name, budget)
}

// ReadFile reads the .npz archive at path; see Read.
func ReadFile(path string, maxBytes int64) (map[string]*tensor.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return Read(f, st.Size(), maxBytes)
}
