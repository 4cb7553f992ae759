//go:build !linux && !purego

package peakmeter

import "errors"

// amxRequest reports that this OS has not been taught to grant tile state.
func amxRequest() error { return errors.New("AMX tile state: only requested on Linux") }
