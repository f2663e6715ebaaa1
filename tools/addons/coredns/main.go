// Command coredns is CoreDNS (github.com/coredns/coredns, pinned in go.mod) with only the plugins
// the test cluster's DNS uses: the kubernetes plugin answers <svc>.<ns>.svc.cluster.local from the
// API server. Leaving out the cloud DNS back-ends (route53, azure, clouddns, etcd) is what keeps
// this build to a fraction of the full `go install github.com/coredns/coredns`.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// The order plugins run in, as in CoreDNS's own plugin.cfg.
var directives = []string{"bind", "ready", "errors", "log", "cache", "template", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
