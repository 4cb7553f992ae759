package repository

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/corvidml/corvid/server/onnx"
)

// versionFiles opens a version folder's external data files for the ONNX
// decoder, inside the folder only: through os.Root, so no path can leave
// it, and refusing symbolic links (anywhere on the path) and files with
// more than one hard link, which could make a file from elsewhere appear
// inside. The locations come from the model file, which is untrusted.
type versionFiles struct {
	dir  string
	once sync.Once
	root *os.Root
	err  error
}

func (v *versionFiles) Open(location string) (onnx.ExternalFile, error) {
	v.once.Do(func() { v.root, v.err = os.OpenRoot(v.dir) })
	if v.err != nil {
		return nil, v.err
	}
	// Every element of the path must be a plain folder or file.
	parts := strings.Split(location, "/")
	for i := range parts {
		p := path.Join(parts[:i+1]...)
		fi, err := v.root.Lstat(p)
		if err != nil {
			return nil, notFound(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symbolic link; external data must be a plain file inside the version folder", p)
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a folder", p)
		}
	}
	before, err := v.root.Lstat(location)
	if err != nil {
		return nil, notFound(err)
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", location)
	}
	if n := hardLinks(before); n > 1 {
		return nil, fmt.Errorf("%s has %d hard links; external data must not be linked from elsewhere", location, n)
	}
	f, err := v.root.Open(location)
	if err != nil {
		return nil, notFound(err)
	}
	after, err := f.Stat()
	if err != nil || !os.SameFile(before, after) {
		f.Close()
		return nil, fmt.Errorf("%s changed while it was opened", location)
	}
	return &externalFile{File: f, size: after.Size()}, nil
}

func (v *versionFiles) close() {
	if v.root != nil {
		v.root.Close()
	}
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("no such file in the version folder")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err // not the absolute path
	}
	return err
}

type externalFile struct {
	*os.File
	size int64
}

func (f *externalFile) Size() int64 { return f.size }
