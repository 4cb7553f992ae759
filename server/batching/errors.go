package batching

import "errors"

// ErrQueueFull reports a request refused because Config.MaxQueueSize
// requests are already waiting. It is an overload signal: the request was
// not run and may be retried (gRPC UNAVAILABLE, REST 503).
var ErrQueueFull = errors.New("batching queue is full")

// ErrClosed reports a request made after Close.
var ErrClosed = errors.New("batching queue is closed")

// ErrNotBatchable reports, from New, a model whose requests cannot be
// merged: an input or output without a dynamic first (batch) dimension, or
// a model that takes one row at a time. Serve such a model unbatched.
var ErrNotBatchable = errors.New("model cannot be batched")
