//go:build amd64 && !purego && !race

#include "textflag.h"

// func storeRelease(p *uint64, v uint64)
//
// A plain store: on amd64 (total store order) it is seen after every store
// before it, and it does not wait for its cache line, as XCHG (Go's
// atomic store) does.
TEXT ·storeRelease(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, (AX)
	RET
