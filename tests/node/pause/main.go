// The test node's pod sandbox: holds a pod's namespaces open until the kubelet stops the pod. The usual
// pause image comes from a registry, which this machine cannot reach, so tests/node/build.sh builds this
// one and packs it as an image (no shell, no libraries: a static Go binary).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of the sandbox, reap children that other containers of a shared PID namespace leave.
	children := make(chan os.Signal, 16)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			return
		case <-children:
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
