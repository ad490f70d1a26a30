//go:build tools

// Package tools pins the upstream commands the tests build; go.mod holds the versions.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
