// Command etcd starts the etcd server from the go.etcd.io/etcd server module,
// pinned to the version the Kubernetes release itself is tested against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
