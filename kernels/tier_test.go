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
		{"amx", min(AMX, Best)},
		{" AMX ", min(AMX, Best)},
		{"avx2", min(AVX2, Best)},
	} {
		if got := chooseTier(tt.env); got != tt.want {
			t.Errorf("chooseTier(%q) = %v, want %v", tt.env, got, tt.want)
		}
	}
	if _, err := SetTier(Best + 1); err == nil && Best < AMX {
		t.Errorf("SetTier(%v) on a %v CPU succeeded", Best+1, Best)
	}
	prev, err := SetTier(Generic)
	if err != nil || Active() != Generic {
		t.Fatalf("SetTier(Generic) = %v, active %v", err, Active())
	}
	SetTier(prev)
}

func TestTierNames(t *testing.T) {
	for tier := Generic; tier <= AMX; tier++ {
		got, err := ParseTier(tier.String())
		if err != nil || got != tier {
			t.Errorf("ParseTier(%q) = %v, %v, want %v", tier.String(), got, err, tier)
		}
	}
	if AMX.String() != "amx" {
		t.Errorf("AMX.String() = %q, want amx", AMX.String())
	}
}
