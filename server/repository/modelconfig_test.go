package repository

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

func TestModelConfig(t *testing.T) {
	good := &fstest.MapFile{Data: []byte("good")}
	cal := &fstest.MapFile{Data: []byte("npz bytes")}
	fsys := fstest.MapFS{
		"plain/1/model.onnx":        good,
		"dyn/model.yaml":            {Data: []byte("quantization: int8-dynamic\n")},
		"dyn/1/model.onnx":          good,
		"static/model.yaml":         {Data: []byte("quantization: int8-static\n")},
		"static/calibration.npz":    cal,
		"static/1/model.onnx":       good,
		"named/model.yaml":          {Data: []byte("quantization: int8-static\ncalibration: data/cal.npz\n")},
		"named/data/cal.npz":        cal,
		"named/1/model.onnx":        good,
		"nocal/model.yaml":          {Data: []byte("quantization: int8-static\n")},
		"nocal/1/model.onnx":        good,
		"typo/model.yaml":           {Data: []byte("quantisation: int8-dynamic\n")},
		"typo/1/model.onnx":         good,
		"badmode/model.yaml":        {Data: []byte("quantization: int4\n")},
		"badmode/1/model.onnx":      good,
		"escape/model.yaml":         {Data: []byte("quantization: int8-static\ncalibration: ../static/calibration.npz\n")},
		"escape/1/model.onnx":       good,
		"calnotstatic/model.yaml":   {Data: []byte("quantization: int8-dynamic\ncalibration: c.npz\n")},
		"calnotstatic/1/model.onnx": good,
		"notyaml/model.yaml":        {Data: []byte("quantization: [\n")},
		"dangling/model.yaml":       {Data: []byte("labels: {stable: 9}\n")},
		"dangling/1/model.onnx":     good,
		"notyaml/1/model.onnx":      good,
	}
	r := New(fsys, loader(), Options{})
	if _, err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		model, mode, cal, err string
	}{
		{model: "plain", mode: QuantFP32},
		{model: "dyn", mode: QuantInt8Dynamic},
		{model: "static", mode: QuantInt8Static, cal: "npz bytes"},
		{model: "named", mode: QuantInt8Static, cal: "npz bytes"},
		{model: "nocal", err: "model.yaml: quantization: int8-static needs a calibration set, and nocal/calibration.npz does not exist"},
		{model: "typo", err: `model.yaml: error unmarshaling JSON: while decoding JSON: json: unknown field "quantisation"`},
		{model: "badmode", err: `model.yaml: quantization: got "int4", want fp32, int8-dynamic or int8-static`},
		{model: "escape", err: `model.yaml: calibration: got "../static/calibration.npz", want a path inside the model's folder`},
		{model: "calnotstatic", err: "model.yaml: calibration: set, but quantization is int8-dynamic"},
		{model: "notyaml", err: "model.yaml: error converting YAML to JSON"},
		{model: "dangling", err: "model.yaml: labels.stable: version 9 is not in the model's folder (versions: [1])"},
	} {
		st, err := r.Status(tt.model)
		if err != nil {
			t.Fatal(err)
		}
		v := st.Versions[0]
		if tt.err != "" {
			if v.State != StateFailed || v.Err == nil || !strings.Contains(v.Err.Error(), tt.err) {
				t.Errorf("%s: state %v, error %v; want FAILED with %q", tt.model, v.State, v.Err, tt.err)
			}
			continue
		}
		if v.State != StateAvailable {
			t.Errorf("%s: state %v (%v), want AVAILABLE", tt.model, v.State, v.Err)
			continue
		}
		if v.ExecutionMode != tt.mode {
			t.Errorf("%s: execution mode %q, want %q", tt.model, v.ExecutionMode, tt.mode)
		}
		s, err := r.Resolve(tt.model, 0, "", "")
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
		if got := string(s.Servable.(*stub).req.Calibration); got != tt.cal {
			t.Errorf("%s: calibration %q, want %q", tt.model, got, tt.cal)
		}
	}
}
