package corvid_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	corvid "github.com/corvidml/corvid/client/go"
	corvidv1 "github.com/corvidml/corvid/gen/go/corvid/v1"
)

// openStream opens a Stream on c, closed when the test ends.
func openStream(t *testing.T, c *corvid.Client) *corvid.Stream {
	t.Helper()
	s, err := c.Stream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// wantValue checks that resp echoes the single input value of a request made
// by predictRequest.
func wantValue(t *testing.T, resp *corvidv1.PredictResponse, want float32) {
	t.Helper()
	got, err := corvid.AsFloat32(resp.GetOutputs()["x"])
	if err != nil {
		t.Fatalf("output x: %v", err)
	}
	if len(got) != 1 || got[0] != want {
		t.Errorf("output x = %v, want [%v]", got, want)
	}
}

// wantStatus checks that err is a status error with this code and message.
func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not a status error", err, err)
	}
	if st.Code() != code || st.Message() != msg {
		t.Errorf("error = %v: %q, want %v: %q", st.Code(), st.Message(), code, msg)
	}
}

// TestStreamMatchesResponses runs many concurrent callers through a server
// that answers every batch of 8 requests last first: each caller must get
// the response to its own request.
func TestStreamMatchesResponses(t *testing.T) {
	c := dial(t, &fakeServer{reverse: 8})
	s := openStream(t, c)

	const callers = 64 // a multiple of the batch, or the last batch waits forever
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var id string
			if i%2 == 0 { // half name their request, half leave it to Stream
				id = fmt.Sprintf("caller-%d", i)
			}
			resp, err := s.Predict(t.Context(), predictRequest("echo", id, float32(i)))
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
				return
			}
			wantValue(t, resp, float32(i))
			if id != "" && resp.GetRequestId() != id {
				t.Errorf("caller %d: request id = %q, want %q", i, resp.GetRequestId(), id)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestStreamGeneratesIDs checks that a request without an id is sent with a
// unique one, and that the caller's request is left as it was.
func TestStreamGeneratesIDs(t *testing.T) {
	c := dial(t, &fakeServer{})
	s := openStream(t, c)

	req := predictRequest("echo", "", 7)
	req.VersionSelector = &corvidv1.PredictRequest_VersionLabel{VersionLabel: "stable"}
	before := protoClone(req)
	ids := make(map[string]bool)
	for range 3 {
		resp, err := s.Predict(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		wantValue(t, resp, 7)
		id := resp.GetRequestId()
		if id == "" || ids[id] {
			t.Errorf("request id = %q, want a fresh non-empty id (had %v)", id, ids)
		}
		ids[id] = true
	}
	if diff := cmp.Diff(before, req, protocmp.Transform()); diff != "" {
		t.Errorf("Predict changed the caller's request (-before +after):\n%s", diff)
	}
}

// TestStreamItemErrors checks that a failed item comes back as the status
// the server sent, details included, and that the stream stays usable.
func TestStreamItemErrors(t *testing.T) {
	c := dial(t, &fakeServer{})
	s := openStream(t, c)

	_, err := s.Predict(t.Context(), predictRequest(modelBad, "r1", 1))
	wantStatus(t, err, codes.InvalidArgument, `model "bad" rejects request "r1"`)
	got := status.Convert(err).Proto()
	want := errBad(predictRequest(modelBad, "r1", 1)).Proto()
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	_, err = s.Predict(t.Context(), predictRequest(modelEmpty, "r2", 2))
	wantStatus(t, err, codes.Internal, `corvid: stream response for request "r2" carries neither a prediction nor an error`)

	// The server first answers an id nobody asked for; it is dropped.
	resp, err := s.Predict(t.Context(), predictRequest(modelStray, "r3", 3))
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, resp, 3)

	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestStreamBreakFailsEveryWaiter breaks the stream while requests wait:
// every waiter, and every later caller, gets the status it broke with.
func TestStreamBreakFailsEveryWaiter(t *testing.T) {
	srv := &fakeServer{received: make(chan string, 8)}
	c := dial(t, srv)
	s := openStream(t, c)

	const waiters = 3
	errs := make(chan error, waiters+1)
	for i := range waiters {
		go func() {
			_, err := s.Predict(t.Context(), predictRequest(modelHold, fmt.Sprint("held-", i), 0))
			errs <- err
		}()
	}
	for range waiters {
		<-srv.received
	}
	go func() {
		_, err := s.Predict(t.Context(), predictRequest(modelBreak, "breaker", 0))
		errs <- err
	}()
	for range waiters + 1 {
		wantStatus(t, <-errs, codes.Unavailable, "fake server broke the stream")
	}

	_, err := s.Predict(t.Context(), predictRequest("echo", "after", 0))
	wantStatus(t, err, codes.Unavailable, "fake server broke the stream")
	wantStatus(t, s.Close(), codes.Unavailable, "fake server broke the stream")
}

// TestStreamDeadline checks both the caller's deadline and WithTimeout: the
// call gives up, and the stream stays usable.
func TestStreamDeadline(t *testing.T) {
	c := dial(t, &fakeServer{}, corvid.WithTimeout(50*time.Millisecond))
	s := openStream(t, c)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	_, err := s.Predict(ctx, predictRequest(modelHold, "mine", 0))
	wantStatus(t, err, codes.DeadlineExceeded, context.DeadlineExceeded.Error())

	_, err = s.Predict(t.Context(), predictRequest(modelHold, "default", 0))
	wantStatus(t, err, codes.DeadlineExceeded, context.DeadlineExceeded.Error())

	// A deadline of the caller's own, however long, replaces the default,
	// which is kept short above to keep the test fast.
	ctx, cancel = context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := s.Predict(ctx, predictRequest("echo", "", 4))
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, resp, 4)
}

// TestStreamDuplicateID refuses a request id that is already waiting: its
// response could not be told apart.
func TestStreamDuplicateID(t *testing.T) {
	srv := &fakeServer{received: make(chan string, 1)}
	c := dial(t, srv)
	s := openStream(t, c)

	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() {
		_, err := s.Predict(ctx, predictRequest(modelHold, "same", 0))
		first <- err
	}()
	<-srv.received

	_, err := s.Predict(t.Context(), predictRequest("echo", "same", 0))
	if got, want := fmt.Sprint(err), `corvid: stream predict: request id "same" is already waiting for a response on this stream`; got != want {
		t.Errorf("duplicate id: error = %s, want %s", got, want)
	}
	cancel()
	wantStatus(t, <-first, codes.Canceled, context.Canceled.Error())

	// Once the first caller gave up, its id is free again.
	resp, err := s.Predict(t.Context(), predictRequest("echo", "same", 5))
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, resp, 5)
}

// TestStreamCloseWaitsForAnswers checks that Close lets the server answer
// the requests in flight before it returns.
func TestStreamCloseWaitsForAnswers(t *testing.T) {
	srv := &fakeServer{received: make(chan string, 1), release: make(chan struct{})}
	c := dial(t, srv)
	s := openStream(t, c)

	type answer struct {
		resp *corvidv1.PredictResponse
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := s.Predict(t.Context(), predictRequest(modelSlow, "slow", 6))
		answered <- answer{resp, err}
	}()
	<-srv.received

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the request in flight was answered", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(srv.release)

	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantValue(t, a.resp, 6)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := s.Predict(t.Context(), predictRequest("echo", "", 0)); !errors.Is(err, corvid.ErrStreamClosed) {
		t.Errorf("Predict after Close: error = %v, want ErrStreamClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestStreamEndedUnanswered: a server that ends the stream without
// answering leaves its waiters with ErrStreamClosed, not hanging.
func TestStreamEndedUnanswered(t *testing.T) {
	srv := &fakeServer{received: make(chan string, 1)}
	c := dial(t, srv)
	s := openStream(t, c)

	errc := make(chan error, 1)
	go func() {
		_, err := s.Predict(t.Context(), predictRequest(modelHold, "orphan", 0))
		errc <- err
	}()
	<-srv.received
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-errc; !errors.Is(err, corvid.ErrStreamClosed) {
		t.Errorf("waiter: error = %v, want ErrStreamClosed", err)
	}
}

// TestStreamContextCancel ends the stream through the context given to
// Client.Stream: waiters fail with Canceled and Close returns at once.
func TestStreamContextCancel(t *testing.T) {
	srv := &fakeServer{received: make(chan string, 1)}
	c := dial(t, srv)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := s.Predict(t.Context(), predictRequest(modelHold, "x", 0))
		errc <- err
	}()
	<-srv.received
	cancel()
	if got := status.Code(<-errc); got != codes.Canceled {
		t.Errorf("waiter: code = %v, want %v", got, codes.Canceled)
	}
	if got := status.Code(s.Close()); got != codes.Canceled {
		t.Errorf("Close: code = %v, want %v", got, codes.Canceled)
	}
}

func TestStreamNilRequest(t *testing.T) {
	c := dial(t, &fakeServer{})
	s := openStream(t, c)
	if _, err := s.Predict(t.Context(), nil); err == nil {
		t.Error("Predict(nil): no error")
	}
}
