package peakmeter

import "time"

// FamilyByName returns the family called name ("vnni_zmm", "fma_ymm", ...).
func FamilyByName(name string) (Family, bool) {
	for _, f := range Families {
		if f.Name == name {
			return f, true
		}
	}
	return Family{}, false
}

// PerCore measures the named family on one core for about dur and returns
// its rate in ops per second, or false if the family is unknown or this CPU
// lacks it.
func PerCore(name string, dur time.Duration) (float64, bool) {
	f, ok := FamilyByName(name)
	if !ok {
		return 0, false
	}
	loop, ok := Loop(name)
	if !ok {
		return 0, false
	}
	return Measure(f, loop, 1, dur, 0).PerCore, true
}
