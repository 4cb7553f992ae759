// Package batching owns dynamic batching: requests to one model version
// wait in a bounded queue, are merged along the batch axis into one run of
// the model, and each caller gets exactly its own rows back.
//
// A Batcher cuts a batch when the queued rows reach Config.MaxBatchSize or a
// preferred size, or when the oldest request has waited
// Config.MaxQueueDelay, whichever comes first; it runs up to
// Config.Concurrency batches at once so that a model with several workers
// is not serialized. Only requests that can be merged share a batch: the
// same sizes for every dimension after the first, and the same requested
// outputs. A request whose context ends while it is queued is dropped,
// never run. When a batch of several requests fails, each is run again
// alone, so that a request the model fails on does not fail the others.
//
// The package knows nothing of gRPC or of the repository: it wraps anything
// with the Model method set (repository.Servable and runtime.Model have it)
// and reports failures as sentinel errors (ErrQueueFull, ErrClosed,
// ErrNotBatchable) and context errors, which server/api maps to codes.
package batching
