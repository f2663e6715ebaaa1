// Command cert-manager runs cert-manager's own controllers (github.com/cert-manager/cert-manager,
// the version of the CRDs the test cluster installs) for the issuers that work offline: SelfSigned
// and CA. Its cmd/controller is a module of its own that the Go proxy does not serve, so this main
// builds the controller context the same way from the published packages.
//
// ACME issuers cannot reach Let's Encrypt from a test machine. They are left to the test tier's
// simulator (test/support/cert-manager-sim.ts): the ACME issuer type is registered as one that
// this controller never sets up, and no ACME CertificateRequest controller is built in, so the two
// never write the same object.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	apiutil "github.com/cert-manager/cert-manager/pkg/api/util"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/issuer"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// leftToSimulator is the issuer an ACME (Cluster)Issuer gets here: its Setup changes nothing, so
// the issuer's status stays the simulator's to write.
type leftToSimulator struct{}

func (leftToSimulator) Setup(context.Context, cmapi.GenericIssuer) error { return nil }

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "cert-manager", "namespace of the Secrets that ClusterIssuers refer to")
	workers := flag.Int("workers", 2, "workers per controller")
	list := flag.Bool("list", false, "print the controllers built in and exit")
	leaseNamespace := flag.String("leader-election-namespace", "kube-system", "namespace of the leader lease cert-manager-controller")
	flag.Parse()
	names := make([]string, 0, len(controllerpkg.Known()))
	for name := range controllerpkg.Known() {
		names = append(names, name)
	}
	sort.Strings(names)
	if *list {
		fmt.Println(strings.Join(names, "\n"))
		return
	}
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "cert-manager: --kubeconfig is required")
		os.Exit(2)
	}
	issuer.RegisterIssuer(apiutil.IssuerACME, func(*controllerpkg.Context) (issuer.Interface, error) {
		return leftToSimulator{}, nil
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log.WithName("cert-manager"))
	if err := leading(ctx, *kubeconfig, *leaseNamespace, func(ctx context.Context) error {
		return run(ctx, *kubeconfig, *clusterResourceNamespace, *workers, names)
	}); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager:", err)
		os.Exit(1)
	}
}

// leading runs work while this process holds the Lease cert-manager-controller, as cert-manager's
// own controller does (cmd/controller: the lease's name, kube-system, 60 s duration, renewed within
// 40 s, retried every 15 s). Tools that ask whether cert-manager runs (diatonic apply's liveness
// check) look for that lease, so the test cluster's controller holds it too.
func leading(ctx context.Context, kubeconfig, namespace string, work func(context.Context) error) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, "cert-manager-controller", client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: fmt.Sprintf("%s-%d", host, os.Getpid())})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var result error
	setResult := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if result == nil {
			result = err
		}
	}
	leaderCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	leaderelection.RunOrDie(leaderCtx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   60 * time.Second,
		RenewDeadline:   40 * time.Second,
		RetryPeriod:     15 * time.Second,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				setResult(work(ctx))
				cancel()
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					setResult(fmt.Errorf("lost the leader lease %s/cert-manager-controller", namespace))
				}
			},
		},
	})
	mu.Lock()
	defer mu.Unlock()
	return result
}

func run(ctx context.Context, kubeconfig, clusterResourceNamespace string, workers int, names []string) error {
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: clusterResourceNamespace},
		// cert-manager's own defaults (cmd/controller): a failed request is retried after an hour.
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}
	controllers := make(map[string]controllerpkg.Interface, len(names))
	for _, name := range names {
		controller, err := controllerpkg.Known()[name](factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		controllers[name] = controller
	}
	// The controllers registered their informers while being built: start them now.
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	fmt.Printf("cert-manager: running %s\n", strings.Join(names, ", "))

	var wg sync.WaitGroup
	errs := make(chan error, len(controllers))
	for name, controller := range controllers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := controller.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
