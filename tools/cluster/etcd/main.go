// Command etcd is etcd's own server entry point (etcdmain), at the version Kubernetes pins,
// so the test cluster's store is built in the same module and go build as the control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
