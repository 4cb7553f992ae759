package auth_test

import (
	"fmt"
	"path/filepath"

	"github.com/corvidml/corvid/server/auth"
)

func ExamplePolicy_Allow() {
	p, err := auth.LoadPolicy(filepath.Join("testdata", "policy.yaml"))
	if err != nil {
		panic(err)
	}
	svc := auth.Identity{Name: "spiffe://corvid.local/team-a/scorer", Source: auth.SourceMTLS}
	fmt.Println(p.Allow(svc, auth.ActionPredict, "fraud-v2"))
	fmt.Println(p.Allow(svc, auth.ActionControl, "fraud-v2"))
	fmt.Println(p.AllowedModels(svc, auth.ActionStatus, []string{"digits", "resnet", "fraud-v1"}))
	// Output:
	// true
	// false
	// [digits fraud-v1]
}
