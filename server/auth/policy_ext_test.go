package auth_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corvidml/corvid/server/auth"
)

func TestPolicyAllow(t *testing.T) {
	p, err := auth.LoadPolicy(filepath.Join("testdata", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	teamA := auth.Identity{Name: "spiffe://corvid.local/team-a/scorer", Source: auth.SourceMTLS}
	admin := auth.Identity{Name: "admin", Source: auth.SourceMTLS}
	dash := auth.Identity{Name: "dashboard-ops", Source: auth.SourceJWT}
	for _, tc := range []struct {
		name   string
		id     auth.Identity
		action auth.Action
		model  string
		want   bool
	}{
		{"glob identity, exact model", teamA, auth.ActionPredict, "digits", true},
		{"glob identity, glob model", teamA, auth.ActionStatus, "fraud-v2", true},
		{"model outside the list", teamA, auth.ActionPredict, "resnet", false},
		{"glob model needs its prefix", teamA, auth.ActionPredict, "fraud", false},
		{"action not granted", teamA, auth.ActionControl, "digits", false},
		{"identity glob does not cross /", auth.Identity{Name: "spiffe://corvid.local/team-a/x/y", Source: auth.SourceMTLS}, auth.ActionPredict, "digits", false},
		{"other team", auth.Identity{Name: "spiffe://corvid.local/team-b/scorer", Source: auth.SourceMTLS}, auth.ActionPredict, "digits", false},
		{"identity prefix only", auth.Identity{Name: "spiffe://corvid.local/team-a", Source: auth.SourceMTLS}, auth.ActionPredict, "digits", false},
		{"source must match", auth.Identity{Name: teamA.Name, Source: auth.SourceJWT}, auth.ActionPredict, "digits", false},
		{"JWT sub posing as the mTLS admin", auth.Identity{Name: "admin", Source: auth.SourceJWT}, auth.ActionControl, "digits", false},
		{"admin control", admin, auth.ActionControl, "digits", true},
		{"admin repository-wide control", admin, auth.ActionControl, auth.AllModels, true},
		{"team-a repository-wide status", teamA, auth.ActionStatus, auth.AllModels, false},
		{"dashboard status", dash, auth.ActionStatus, "resnet", true},
		{"dashboard predict", dash, auth.ActionPredict, "resnet", false},
		{"unknown identity", auth.Identity{Name: "mallory", Source: auth.SourceMTLS}, auth.ActionStatus, "digits", false},
		{"empty identity", auth.Identity{}, auth.ActionStatus, "digits", false},
		{"empty model", admin, auth.ActionStatus, "", false},
		{"unknown action", admin, auth.Action("delete"), "digits", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Allow(tc.id, tc.action, tc.model); got != tc.want {
				t.Errorf("Allow(%+v, %s, %q) = %v, want %v", tc.id, tc.action, tc.model, got, tc.want)
			}
		})
	}

	models := []string{"digits", "fraud-v1", "resnet", "fraud-v2"}
	if got, want := p.AllowedModels(teamA, auth.ActionStatus, models), []string{"digits", "fraud-v1", "fraud-v2"}; !slices.Equal(got, want) {
		t.Errorf("AllowedModels(team-a) = %q, want %q", got, want)
	}
	if got := p.AllowedModels(auth.Identity{Name: "mallory"}, auth.ActionStatus, models); len(got) != 0 {
		t.Errorf("AllowedModels(mallory) = %q, want none", got)
	}
}

func TestPolicyStarMatchesEveryIdentity(t *testing.T) {
	p, err := auth.ParsePolicy([]byte(`rules: [{identity: "*", models: ["digits"], actions: [status]}]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "spiffe://corvid.local/team-a/x/y"} {
		if !p.Allow(auth.Identity{Name: name, Source: auth.SourceJWT}, auth.ActionStatus, "digits") {
			t.Errorf("identity %q refused by identity: \"*\"", name)
		}
	}
	if p.Allow(auth.Identity{Name: "a"}, auth.ActionPredict, "digits") {
		t.Error("predict allowed by a status-only rule")
	}
}

func TestNilPolicyAllowsAll(t *testing.T) {
	var p *auth.Policy
	if !p.Allow(auth.Identity{}, auth.ActionControl, "anything") {
		t.Error("nil policy refused a request")
	}
	models := []string{"a", "b"}
	if got := p.AllowedModels(auth.Identity{}, auth.ActionStatus, models); !slices.Equal(got, models) {
		t.Errorf("nil policy AllowedModels = %q, want %q", got, models)
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"empty file", ``, []string{"rules: empty"}},
		{"no rules", `rules: []`, []string{"rules: empty"}},
		{"unknown top-level key", "rule:\n- identity: a\n", []string{`unknown field "rule"`}},
		{"unknown rule key", "rules:\n- identity: a\n  models: [x]\n  actions: [status]\n- identiy: b\n", []string{`rules[1]`, `unknown field "identiy"`}},
		{"bad action", "rules:\n- identity: a\n  models: [x]\n  actions: [status, delete]\n", []string{`rules[0].actions[1]: "delete", want predict, status or control`}},
		{"empty identity", "rules:\n- models: [x]\n  actions: [status]\n", []string{"rules[0].identity: empty"}},
		{"bad identity pattern", "rules:\n- identity: \"team-[a\"\n  models: [x]\n  actions: [status]\n", []string{"rules[0].identity:", "syntax error in pattern"}},
		{"bad model pattern", "rules:\n- identity: a\n  models: [x, \"[\"]\n  actions: [status]\n", []string{"rules[0].models[1]:"}},
		{"empty model", "rules:\n- identity: a\n  models: [\"\"]\n  actions: [status]\n", []string{"rules[0].models[0]: empty"}},
		{"no models", "rules:\n- identity: a\n  actions: [status]\n", []string{"rules[0].models: empty"}},
		{"no actions", "rules:\n- identity: a\n  models: [x]\n", []string{"rules[0].actions: empty"}},
		{"bad source", "rules:\n- identity: a\n  source: ldap\n  models: [x]\n  actions: [status]\n", []string{`rules[0].source: "ldap"`}},
		{"every problem at once", "rules:\n- identity: a\n  models: [x]\n  actions: [status]\n- source: x\n", []string{"rules[1].identity", "rules[1].source", "rules[1].models", "rules[1].actions"}},
		{"wrong type", "rules:\n- identity: a\n  models: x\n  actions: [status]\n", []string{"rules[0]:", "cannot unmarshal"}},
		{"duplicate key", "rules:\n- identity: a\n  identity: b\n  models: [x]\n  actions: [status]\n", []string{"already set"}},
		{"not YAML", "rules: [", []string{"yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := auth.LoadPolicy(path)
			if err == nil {
				t.Fatalf("LoadPolicy = %+v, want an error", p.Rules())
			}
			for _, want := range append(tc.want, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q, want it to contain %q", err, want)
				}
			}
		})
	}
	if _, err := auth.LoadPolicy(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing policy file accepted")
	}
}
