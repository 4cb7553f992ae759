package onnx

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	onnxpb "github.com/corvidml/corvid/gen/go/onnx"
	"github.com/corvidml/corvid/server/tensor"
)

// ExternalFiles opens the files an initializer's external_data names. The
// locations come from an untrusted model file: an implementation must keep
// them inside the model's folder (see the repository's, which uses os.Root
// and refuses symbolic and hard links).
type ExternalFiles interface {
	Open(location string) (ExternalFile, error)
}

// ExternalFile is one opened external data file.
type ExternalFile interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// DecodeOptions configures DecodeWith.
type DecodeOptions struct {
	// External opens external data files; nil refuses models that have
	// external data.
	External ExternalFiles
	// MaxExternalBytes bounds the external data read for one model.
	// Default 1 GiB.
	MaxExternalBytes int64
}

// externalKeys are the only external_data keys ONNX defines; any other is
// refused (ONNX's own loader had path bugs through lax parsing).
var externalKeys = map[string]bool{"location": true, "offset": true, "length": true, "checksum": true}

// resolveExternal reads every initializer stored as external data into its
// raw_data, after checking its location, offset and length, so that the
// rest of decoding sees an ordinary tensor. Offsets and lengths are checked
// against the file's size without overflow; the bytes read must be exactly
// what the tensor's shape and type need.
func resolveExternal(g *onnxpb.GraphProto, opts DecodeOptions) error {
	budget := opts.MaxExternalBytes
	if budget <= 0 {
		budget = 1 << 30
	}
	files := map[string]ExternalFile{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, tp := range g.GetInitializer() {
		if tp.GetDataLocation() != onnxpb.TensorProto_EXTERNAL && len(tp.GetExternalData()) == 0 {
			continue
		}
		if opts.External == nil {
			return fmt.Errorf("%w: initializer %q: external data is only read from a model repository folder", ErrUnsupported, tp.GetName())
		}
		raw, err := readExternal(tp, opts.External, files, &budget)
		if err != nil {
			return fmt.Errorf("initializer %q: external data: %w", tp.GetName(), err)
		}
		tp.RawData = raw
		tp.ExternalData = nil
		tp.DataLocation = onnxpb.TensorProto_DEFAULT
	}
	return nil
}

func readExternal(tp *onnxpb.TensorProto, ext ExternalFiles, files map[string]ExternalFile, budget *int64) ([]byte, error) {
	kv := map[string]string{}
	for _, e := range tp.GetExternalData() {
		if !externalKeys[e.GetKey()] {
			return nil, fmt.Errorf("%w: key %q, want only location, offset, length or checksum", ErrInvalidModel, e.GetKey())
		}
		if _, dup := kv[e.GetKey()]; dup {
			return nil, fmt.Errorf("%w: key %q given twice", ErrInvalidModel, e.GetKey())
		}
		kv[e.GetKey()] = e.GetValue()
	}
	loc := kv["location"]
	if err := checkLocation(loc); err != nil {
		return nil, err
	}
	offset, err := parseNonNegative(kv, "offset", 0)
	if err != nil {
		return nil, err
	}
	f, ok := files[loc]
	if !ok {
		if f, err = ext.Open(loc); err != nil {
			return nil, fmt.Errorf("%w: location %q: %w", ErrInvalidModel, loc, err)
		}
		files[loc] = f
	}
	size := f.Size()
	if offset > size {
		return nil, fmt.Errorf("%w: offset %d is past the end of %q (%d bytes)", ErrInvalidModel, offset, loc, size)
	}
	length, err := parseNonNegative(kv, "length", size-offset)
	if err != nil {
		return nil, err
	}
	if length > size-offset {
		return nil, fmt.Errorf("%w: offset %d + length %d is past the end of %q (%d bytes)", ErrInvalidModel, offset, length, loc, size)
	}
	dt, err := dtypeFromProto(tp.GetDataType())
	if err != nil {
		return nil, err
	}
	n, err := tensor.NumElements(tp.GetDims())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	if want := int64(n) * int64(dt.Size()); length != want {
		return nil, fmt.Errorf("%w: length %d bytes, want %d (shape %v x %d-byte %v)", ErrInvalidModel, length, want, tp.GetDims(), dt.Size(), dt)
	}
	if length > *budget {
		return nil, fmt.Errorf("%w: the model's external data exceeds the limit of %d bytes", ErrUnsupported, *budget+length)
	}
	*budget -= length
	if sum, ok := kv["checksum"]; ok {
		if err := checkSHA1(f, sum, loc); err != nil {
			return nil, err
		}
	}
	raw := make([]byte, length)
	if _, err := f.ReadAt(raw, offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return nil, fmt.Errorf("%w: reading %q: %w", ErrInvalidModel, loc, err)
	}
	return raw, nil
}

// checkLocation accepts a relative, slash-separated path with no "." or
// ".." element (so "sub/../../x", the path of CVE-2024-27318, is refused
// as written, not cleaned into something else), no backslash and no NUL.
func checkLocation(loc string) error {
	switch {
	case loc == "":
		return fmt.Errorf("%w: no location", ErrInvalidModel)
	case strings.ContainsAny(loc, "\\\x00"), !fs.ValidPath(loc), loc == ".":
		return fmt.Errorf("%w: location %q is not a plain relative path inside the model's folder", ErrInvalidModel, loc)
	}
	return nil
}

func parseNonNegative(kv map[string]string, key string, def int64) (int64, error) {
	s, ok := kv[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: %s %q, want a non-negative integer", ErrInvalidModel, key, s)
	}
	return v, nil
}

// checkSHA1 compares the whole file's SHA-1 with the checksum ONNX records
// (lowercase hex).
func checkSHA1(f ExternalFile, want, loc string) error {
	h := sha1.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
		return fmt.Errorf("%w: reading %q: %w", ErrInvalidModel, loc, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: %q has SHA-1 %s, the model records %s", ErrInvalidModel, loc, got, want)
	}
	return nil
}
