// Package npz reads numpy's .npz archives (np.savez, np.savez_compressed)
// and single .npy arrays into Corvid tensors.
//
// It owns the .npy format (versions 1.0, 2.0 and 3.0: magic, header
// dictionary, raw little- or big-endian data in C or Fortran order) and the
// zip container around it, stored or deflated. Files are untrusted input: a
// header must be small and well formed, each array's data must be exactly as
// long as its shape says, the bytes decoded from the whole archive are
// bounded by a caller's limit before anything that size is allocated, and
// nothing here panics on any input. Errors name the array and say what was
// expected and what was found.
//
// Only the element types Corvid computes with are read (float32, float64,
// int64, int32, uint8, int8, bool); object arrays, which numpy stores as
// pickles, are refused and never unpickled. The package knows nothing of
// models or of what the arrays are for.
package npz
