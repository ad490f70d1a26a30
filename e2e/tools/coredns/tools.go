//go:build tools

// CoreDNS, the L3 node's cluster DNS, pinned in its own module: its dependency graph
// (client-go among them) stays apart from the Kubernetes module's in ../go.mod.
package tools

import _ "github.com/coredns/coredns"
