//go:build tools

// Package tools pins the upstream commands the tests build; go.mod holds the versions.
// Kubernetes 1.34: supported by kube-rs (k8s-openapi feature v1_34) and its kubelet still
// runs on cgroup v1.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
