// Package models embeds the default model repository, so that `corvid serve`
// with no --models serves something real. The models are made by the scripts
// beside them (train_digits.py), seeded and reproducible.
package models

import "embed"

// Default holds <model>/<version>/model.onnx for every embedded model.
//
//go:embed digits/*/model.onnx
var Default embed.FS
