// Command pause is the pod sandbox of the L3 test node, which cannot pull one: it holds a
// pod's namespaces open, reaps the zombies of processes that share its PID namespace, and
// exits on SIGINT or SIGTERM. It is our own, about what Kubernetes' C pause does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
