package kernels

import "testing"

func TestChooseTier(t *testing.T) {
	for _, tt := range []struct {
		env  string
		want Tier
	}{
		{"", Best},
		{"generic", Generic},
		{"GENERIC", Generic},
		{"nonsense", Best},
		{"avx512vnni", min(AVX512VNNI, Best)},
		{"avx2", min(AVX2, Best)},
	} {
		if got := chooseTier(tt.env); got != tt.want {
			t.Errorf("chooseTier(%q) = %v, want %v", tt.env, got, tt.want)
		}
	}
	if _, err := SetTier(Best + 1); err == nil && Best < AVX512VNNI {
		t.Errorf("SetTier(%v) on a %v CPU succeeded", Best+1, Best)
	}
	prev, err := SetTier(Generic)
	if err != nil || Active() != Generic {
		t.Fatalf("SetTier(Generic) = %v, active %v", err, Active())
	}
	SetTier(prev)
}
