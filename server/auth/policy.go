package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"sigs.k8s.io/yaml"
)

// Action is what a request does to a model.
type Action string

// Actions a policy rule can grant.
const (
	// ActionPredict covers Predict, Stream and their REST forms.
	ActionPredict Action = "predict"
	// ActionStatus covers ModelStatus, model metadata and ListModels (which
	// lists only the models AllowedModels keeps).
	ActionStatus Action = "status"
	// ActionControl covers the model control API (load, unload, reload).
	ActionControl Action = "control"
)

// AllModels, passed as the model to Allow, asks for an action on every model
// at once (a repository-wide control call such as index). Only rules whose
// models list the pattern "*" grant it. It cannot be a model name.
const AllModels = "*"

const maxPolicyBytes = 1 << 20

// Rule grants actions on models to the identities its pattern matches.
//
// Identity and model patterns use path.Match syntax: "*" matches any run of
// characters except "/", "?" one character, "[a-z]" a class, "\\" escapes.
// So "spiffe://corvid.local/team-a/*" matches
// "spiffe://corvid.local/team-a/svc" but not ".../team-a/x/svc". A pattern
// that is exactly "*" matches every identity (including ones with "/") or
// every model. Patterns without metacharacters match exactly.
type Rule struct {
	// Identity is the pattern for Identity.Name.
	Identity string `json:"identity"`
	// Source, if set, limits the rule to identities from "mtls" or "jwt", so
	// a token's sub cannot pose as a certificate identity of the same name.
	Source string `json:"source,omitempty"`
	// Models are patterns for model names.
	Models []string `json:"models"`
	// Actions are granted on every matched model.
	Actions []Action `json:"actions"`
}

// Policy is a parsed policy file: deny unless some rule allows. A nil
// *Policy means no policy is configured and allows everything.
type Policy struct {
	rules []Rule
}

// LoadPolicy reads and checks a policy file (YAML; unknown keys are errors).
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	if len(b) > maxPolicyBytes {
		return nil, fmt.Errorf("policy %s: larger than %d bytes", path, maxPolicyBytes)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy parses policy YAML; errors name the rule index and key.
func ParsePolicy(b []byte) (*Policy, error) {
	var file struct {
		Rules []json.RawMessage `json:"rules"`
	}
	if err := yaml.UnmarshalStrict(b, &file); err != nil {
		return nil, err
	}
	if len(file.Rules) == 0 {
		return nil, errors.New("rules: empty; a policy with no rules would deny every request")
	}
	p := &Policy{rules: make([]Rule, 0, len(file.Rules))}
	var errs []error
	for i, raw := range file.Rules {
		var r Rule
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		bad := r.check()
		for _, err := range bad {
			errs = append(errs, fmt.Errorf("rules[%d].%w", i, err))
		}
		if len(bad) == 0 {
			p.rules = append(p.rules, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// check returns one error per bad key, each starting with the key's name.
func (r *Rule) check() []error {
	var errs []error
	if err := checkPattern(r.Identity); err != nil {
		errs = append(errs, fmt.Errorf("identity: %w", err))
	}
	switch r.Source {
	case "", SourceMTLS, SourceJWT:
	default:
		errs = append(errs, fmt.Errorf("source: %q, want mtls, jwt or nothing (either)", r.Source))
	}
	if len(r.Models) == 0 {
		errs = append(errs, errors.New("models: empty, want model names or patterns"))
	}
	for j, m := range r.Models {
		if err := checkPattern(m); err != nil {
			errs = append(errs, fmt.Errorf("models[%d]: %w", j, err))
		}
	}
	if len(r.Actions) == 0 {
		errs = append(errs, errors.New("actions: empty, want predict, status or control"))
	}
	for j, a := range r.Actions {
		switch a {
		case ActionPredict, ActionStatus, ActionControl:
		default:
			errs = append(errs, fmt.Errorf("actions[%d]: %q, want predict, status or control", j, a))
		}
	}
	return errs
}

func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	return nil
}

func match(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	ok, _ := path.Match(pattern, s) // patterns were checked at load
	return ok
}

// Allow reports whether id may perform action on model; see AllModels for
// repository-wide calls. A nil policy allows everything; otherwise an
// identity with an empty name never matches, and nothing matched is denied.
func (p *Policy) Allow(id Identity, action Action, model string) bool {
	if p == nil {
		return true
	}
	if id.Name == "" || model == "" {
		return false
	}
	for i := range p.rules {
		r := &p.rules[i]
		if !r.grants(id, action) {
			continue
		}
		for _, m := range r.Models {
			if model == AllModels {
				if m == "*" {
					return true
				}
			} else if match(m, model) {
				return true
			}
		}
	}
	return false
}

func (r *Rule) grants(id Identity, action Action) bool {
	if r.Source != "" && r.Source != id.Source {
		return false
	}
	if !match(r.Identity, id.Name) {
		return false
	}
	for _, a := range r.Actions {
		if a == action {
			return true
		}
	}
	return false
}

// AllowedModels returns the models id may perform action on, in their order;
// ListModels uses it with ActionStatus so callers see only what they may
// query. A nil policy returns models unchanged.
func (p *Policy) AllowedModels(id Identity, action Action, models []string) []string {
	if p == nil {
		return models
	}
	out := make([]string, 0, len(models))
	for _, m := range models {
		if m != AllModels && p.Allow(id, action, m) {
			out = append(out, m)
		}
	}
	return out
}

// Rules returns a copy of the rules, for logging the policy at load.
func (p *Policy) Rules() []Rule {
	if p == nil {
		return nil
	}
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r
		out[i].Models = append([]string(nil), r.Models...)
		out[i].Actions = append([]Action(nil), r.Actions...)
	}
	return out
}
