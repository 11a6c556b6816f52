// Command etcd is etcd's own server, built from the Go module proxy: Debian's etcd is too old
// for the watch progress requests kube-apiserver checks for.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
