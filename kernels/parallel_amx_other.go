//go:build !amd64 || purego

package kernels

// amxShare is the AMX tier's per-participant state; there is none here.
type amxShare struct{}

func (j *u8Job) runColsAMX(int, int, *PackedB) bool { return false }

func rowUnit(Tier) int { return vnniRows }

func cutsPanels(Tier, int) bool { return true }

func halvesPanels(Tier, int, *PackedB) bool { return false }

func (j *u8Job) runHalves(int, int, int) {
	panic("kernels: no VNNI kernels to run halves of panels on")
}

func amxTiles(int, *PackedB) bool { return false }
