// Package codec is the protobuf codec of Corvid's gRPC server and Go SDK:
// grpc-go's own ("proto"), with buffers for large messages that are sized
// to them and not cleared.
//
// grpc-go's default codec marshals a message of more than 1 KiB into a
// buffer from mem.DefaultBufferPool, and gathers a received one that came
// in several HTTP/2 frames into such a buffer before unmarshaling it. That
// pool's sizes are 256 B, 4 KiB, 16 KiB, 32 KiB and 1 MiB (grpc-go 1.85,
// mem/buffer_pool.go), and it clears a buffer's whole capacity on every
// Get. A batch of 32 rows of 768 float32 (98 KiB) thus clears 1 MiB at
// each of the four steps of a call (marshal and gather, on each side):
// 4 MiB per Predict, a third of the CPU time of an echo of that batch over
// loopback (CPU profile, grpc-go's defaults on both ends). This codec takes
// buffers from power-of-two classes, so the same message uses 128 KiB, and
// does not clear them, because both of its uses overwrite every byte it
// hands on: Marshal marshals into the buffer from its start and hands on
// exactly what it wrote; Unmarshal copies the whole message in before it
// parses it. proto.Unmarshal copies what it keeps (it does not alias its
// input), so a buffer goes back to the pool as soon as Unmarshal returns,
// as grpc-go's own codec does.
package codec

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Name is the codec's name, grpc-go's for protobuf: the content-subtype
// the server and the client agree on ("application/grpc+proto", or none).
const Name = "proto"

// Codec is the codec; its zero value is ready to use and it is safe for
// concurrent use. Use it with grpc.ForceServerCodecV2 on a server and
// grpc.ForceCodecV2 on a client's calls.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// Name returns Name.
func (Codec) Name() string { return Name }

// Marshal marshals v, a protobuf message, as grpc-go's codec does.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, err := message(v)
	if err != nil {
		return nil, err
	}
	// UseCachedSize reuses the sizes proto.Size has just worked out; that is
	// safe because v does not change while it is sent (grpc-go's codec
	// relies on the same).
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := pool.Get(size)
	out, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	if len(out) != size || &out[0] != &(*buf)[0] {
		// The message changed size under us and MarshalAppend grew the
		// slice: hand on what it wrote, and only that.
		pool.Put(buf)
		return mem.BufferSlice{mem.SliceBuffer(out)}, nil
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal parses data into v, a protobuf message.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, err := message(v)
	if err != nil {
		return err
	}
	if len(data) == 1 {
		return proto.Unmarshal(data[0].ReadOnlyData(), m)
	}
	buf := pool.Get(data.Len())
	defer pool.Put(buf)
	data.CopyTo(*buf)
	return proto.Unmarshal(*buf, m)
}

func message(v any) (proto.Message, error) {
	switch v := v.(type) {
	case proto.Message:
		return v, nil
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v), nil
	}
	return nil, fmt.Errorf("codec %s: cannot encode or decode %T: not a protobuf message", Name, v)
}

// Buffer classes: 2^minClass .. 2^maxClass bytes. Smaller requests take the
// smallest class (grpc-go pools nothing under 1 KiB); larger ones are
// allocated each time and left to the garbage collector.
const (
	minClass = 12 // 4 KiB
	maxClass = 26 // 64 MiB
)

var pool = new(classPool)

// classPool is a mem.BufferPool of power-of-two buffers that does not clear
// them: the caller must write every byte it reads (see the package comment).
type classPool struct {
	classes [maxClass + 1]sync.Pool
}

// class returns the class a buffer of n bytes comes from, maxClass+1 if
// none.
func class(n int) int {
	return max(bits.Len(uint(n-1)), minClass)
}

// Get returns a buffer of length n, of capacity 2^class(n) when n fits a
// class, holding whatever it held before.
func (p *classPool) Get(n int) *[]byte {
	c := class(n)
	if c > maxClass {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// Put returns b to its class; a buffer of any other capacity (one too large
// for the classes, or not from Get) is dropped.
func (p *classPool) Put(b *[]byte) {
	c := bits.Len(uint(cap(*b))) - 1
	if c < minClass || c > maxClass || cap(*b) != 1<<c {
		return
	}
	p.classes[c].Put(b)
}
