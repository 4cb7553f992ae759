package runtime

import "errors"

// ErrInvalidInput reports a request that does not fit the model: a missing
// or unknown input or output name, a wrong dtype or shape, a batch too
// large. The message says what was expected and what was received.
var ErrInvalidInput = errors.New("invalid input")

// ErrInternal reports a failure while executing a valid request: an op
// returned an error or panicked. The model keeps serving; a worker whose
// graph panicked rebuilds it.
var ErrInternal = errors.New("internal error")

// ErrClosed reports a Run on a Model that has been closed.
var ErrClosed = errors.New("model is closed")
