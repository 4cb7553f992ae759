package corvid

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// ErrStreamClosed is returned by [Stream.Predict] once [Stream.Close] was
// called, and to callers still waiting when the server ends the stream
// without answering them.
var ErrStreamClosed = errors.New("corvid: stream closed")

// Stream runs predictions over one InferenceService.Stream call. The server
// may answer requests in any order; Stream matches each response to its
// request by request id, so [Stream.Predict] reads like a unary call and may
// be called from many goroutines at once.
//
// One goroutine, started by [Client.Stream] and ended by [Stream.Close] (or
// by the stream's context), receives every response.
type Stream struct {
	bidi    grpc.BidiStreamingClient[corvidv1.StreamRequest, corvidv1.StreamResponse]
	cancel  context.CancelFunc
	timeout time.Duration
	done    chan struct{} // closed when the receiver has returned

	// sendMu serializes Send and CloseSend: a gRPC stream allows one sender
	// at a time.
	sendMu     sync.Mutex
	sendClosed bool

	mu      sync.Mutex
	pending map[string]chan<- result // by request id; each has room for one result
	closing bool                     // Close was called: take no new requests
	err     error                    // why the stream ended; set once by the receiver
}

type result struct {
	resp *corvidv1.PredictResponse
	err  error
}

func newStream(bidi grpc.BidiStreamingClient[corvidv1.StreamRequest, corvidv1.StreamResponse], cancel context.CancelFunc, timeout time.Duration) *Stream {
	s := &Stream{
		bidi:    bidi,
		cancel:  cancel,
		timeout: timeout,
		done:    make(chan struct{}),
		pending: make(map[string]chan<- result),
	}
	go s.receive()
	return s
}

// Predict sends req on the stream and waits for its response.
//
// A request without a request id is sent with a fresh, unique one (req itself
// is left unchanged; the response carries the id). A request id already
// waiting for its response on this stream is refused.
//
// A request the server rejects fails alone, with a status error of the same
// code and message [Client.Predict] would have returned, and the stream stays
// open. If the stream itself breaks, every waiting caller gets the error it
// broke with. If ctx ends first, Predict returns codes.DeadlineExceeded or
// codes.Canceled and the late response is dropped. (ctx does not cut short
// the send itself, which gRPC flow control can hold up while the server is
// not reading; the stream's context does.)
func (s *Stream) Predict(ctx context.Context, req *corvidv1.PredictRequest) (*corvidv1.PredictResponse, error) {
	if req == nil {
		return nil, errors.New("corvid: stream predict: nil request")
	}
	id := req.GetRequestId()
	if id == "" {
		id = rand.Text()
		req = withRequestID(req, id)
	}
	ctx, cancel := withDefaultTimeout(ctx, s.timeout)
	defer cancel()

	ch := make(chan result, 1)
	if err := s.register(id, ch); err != nil {
		return nil, err
	}
	if err := s.send(req); err != nil && !errors.Is(err, io.EOF) {
		s.unregister(id)
		return nil, err
	}
	// A send that failed with io.EOF means the stream is gone; the receiver
	// learns why from Recv and hands that status to every waiter, this one
	// included.
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		if !s.unregister(id) {
			// The receiver took the entry, so a result is on its way, and
			// an answer that arrived wins over a deadline that just passed.
			r := <-ch
			return r.resp, r.err
		}
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// Close ends the stream: it sends no more requests, waits until the server
// has answered the ones in flight and ended the stream, and stops the
// receiving goroutine. It returns the error the stream broke with, if any;
// nil when it ended cleanly. Close may be called more than once.
//
// Close waits for the server. To give up on the answers still outstanding,
// cancel the context passed to [Client.Stream].
func (s *Stream) Close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()

	s.sendMu.Lock()
	if !s.sendClosed {
		s.sendClosed = true
		// CloseSend on a broken stream is harmless, and grpc-go documents
		// that it always returns nil.
		_ = s.bidi.CloseSend()
	}
	s.sendMu.Unlock()

	<-s.done
	s.cancel() // releases the call's resources, as grpc-go asks of every stream

	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(s.err, ErrStreamClosed) {
		return nil
	}
	return s.err
}

func (s *Stream) register(id string, ch chan<- result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return ErrStreamClosed
	case s.err != nil:
		return s.err
	}
	if _, dup := s.pending[id]; dup {
		return fmt.Errorf("corvid: stream predict: request id %q is already waiting for a response on this stream", id)
	}
	s.pending[id] = ch
	return nil
}

// unregister forgets id and reports whether it was still waiting, that is
// whether the receiver had not yet taken it.
func (s *Stream) unregister(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return false
	}
	delete(s.pending, id)
	return true
}

func (s *Stream) send(req *corvidv1.PredictRequest) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if s.sendClosed {
		return ErrStreamClosed
	}
	return s.bidi.Send(&corvidv1.StreamRequest{Request: req})
}

// receive hands every response to the caller waiting for its request id,
// until the stream ends; then it fails every caller still waiting.
func (s *Stream) receive() {
	defer close(s.done)
	for {
		msg, err := s.bidi.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		id := msg.GetRequestId()
		s.mu.Lock()
		ch, ok := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		// Nobody waits for an id we do not know: its caller gave up.
		if ok {
			ch <- streamResult(msg) // never blocks: room for one, one sender
		}
	}
}

func (s *Stream) fail(err error) {
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w by the server", ErrStreamClosed)
	}
	s.mu.Lock()
	s.err = err
	waiting := s.pending
	s.pending = make(map[string]chan<- result)
	s.mu.Unlock()
	for _, ch := range waiting {
		ch <- result{err: err}
	}
}

func streamResult(msg *corvidv1.StreamResponse) result {
	switch r := msg.GetResult().(type) {
	case *corvidv1.StreamResponse_Response:
		if r.Response != nil {
			return result{resp: r.Response}
		}
	case *corvidv1.StreamResponse_Error:
		// A Status with code OK would turn into a nil error, and the caller
		// would get neither a response nor an error.
		if codes.Code(r.Error.GetCode()) != codes.OK {
			return result{err: status.ErrorProto(r.Error)}
		}
	}
	return result{err: status.Errorf(codes.Internal,
		"corvid: stream response for request %q carries neither a prediction nor an error", msg.GetRequestId())}
}

// withRequestID returns a shallow copy of req with its request id set. The
// caller's request stays as it was (it may be shared between goroutines), and
// its tensors, possibly large, are not copied. Copying field by field through
// reflection keeps fields added to PredictRequest later.
func withRequestID(req *corvidv1.PredictRequest, id string) *corvidv1.PredictRequest {
	out := new(corvidv1.PredictRequest)
	dst := out.ProtoReflect()
	req.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	out.RequestId = id
	return out
}
