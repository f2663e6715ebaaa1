// Command provisioner binds the test cluster's PersistentVolumeClaims, which kwok does not: for each
// pending claim of a StorageClass whose provisioner is ours it creates a hostPath PersistentVolume
// pre-bound to the claim, and deletes released volumes whose reclaim policy is Delete. As Rancher's
// local-path provisioner does (the `local-path` of kind and k3d), each volume is a folder made with
// mode 0777 before the pod starts, so non-root pods write to it: hostPath volumes get no fsGroup.
// WaitForFirstConsumer is respected: such a claim is provisioned only once the scheduler has
// picked a node for its pod (the volume.kubernetes.io/selected-node annotation), and the volume is
// pinned to that node. The PersistentVolume controller in kube-controller-manager does the binding.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	selectedNodeAnnotation  = "volume.kubernetes.io/selected-node"
	provisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	names := flag.String("provisioner-names", "diatonic.local/hostpath", "comma-separated StorageClass provisioners this program serves")
	root := flag.String("root", "", "directory under which volume paths are named")
	interval := flag.Duration("interval", 500*time.Millisecond, "how often to look for pending claims")
	flag.Parse()
	if *kubeconfig == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "provisioner: --kubeconfig and --root are required")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "provisioner:", err)
		os.Exit(1)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "provisioner:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &provisioner{client: client, names: map[string]bool{}, root: *root}
	for _, name := range strings.Split(*names, ",") {
		p.names[strings.TrimSpace(name)] = true
	}
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for {
		if err := p.reconcile(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "provisioner:", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

type provisioner struct {
	client kubernetes.Interface
	names  map[string]bool
	root   string
}

func (p *provisioner) reconcile(ctx context.Context) error {
	classes, err := p.client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ours := map[string]storagev1.StorageClass{}
	for _, class := range classes.Items {
		if p.names[class.Provisioner] {
			ours[class.Name] = class
		}
	}
	claims, err := p.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range claims.Items {
		claim := &claims.Items[i]
		if claim.Spec.VolumeName != "" || claim.Status.Phase != corev1.ClaimPending || claim.DeletionTimestamp != nil {
			continue
		}
		if claim.Spec.StorageClassName == nil {
			continue
		}
		class, ok := ours[*claim.Spec.StorageClassName]
		if !ok {
			continue
		}
		node := claim.Annotations[selectedNodeAnnotation]
		waitForConsumer := class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
		if waitForConsumer && node == "" {
			continue
		}
		if err := p.provision(ctx, claim, class, node); err != nil {
			fmt.Fprintf(os.Stderr, "provisioner: claim %s/%s: %v\n", claim.Namespace, claim.Name, err)
		}
	}
	return p.deleteReleased(ctx)
}

func (p *provisioner) provision(ctx context.Context, claim *corev1.PersistentVolumeClaim, class storagev1.StorageClass, node string) error {
	name := "pvc-" + string(claim.UID)
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	path := filepath.Join(p.root, name)
	// Made here, not by the kubelet (which makes it root's, 0755): mkdir's mode is masked by the umask.
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o777); err != nil {
		return err
	}
	volume := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{provisionedByAnnotation: class.Provisioner},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: claim.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   claim.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			VolumeMode:                    claim.Spec.VolumeMode,
			MountOptions:                  class.MountOptions,
			ClaimRef: &corev1.ObjectReference{
				Kind:       "PersistentVolumeClaim",
				APIVersion: "v1",
				Namespace:  claim.Namespace,
				Name:       claim.Name,
				UID:        claim.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathType},
			},
		},
	}
	if node != "" {
		volume.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
			}}}},
		}}
	}
	_, err := p.client.CoreV1().PersistentVolumes().Create(ctx, volume, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		fmt.Printf("provisioned %s for %s/%s on %q\n", name, claim.Namespace, claim.Name, node)
	}
	return err
}

// Reclaiming deletes the object and the folder (which the real node's pods write to; kwok's never do).
func (p *provisioner) deleteReleased(ctx context.Context) error {
	volumes, err := p.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, volume := range volumes.Items {
		if !p.names[volume.Annotations[provisionedByAnnotation]] || volume.DeletionTimestamp != nil {
			continue
		}
		released := volume.Status.Phase == corev1.VolumeReleased || volume.Status.Phase == corev1.VolumeFailed
		if !released || volume.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
			continue
		}
		err := p.client.CoreV1().PersistentVolumes().Delete(ctx, volume.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if volume.Spec.HostPath != nil && filepath.Dir(volume.Spec.HostPath.Path) == filepath.Clean(p.root) {
			if err := os.RemoveAll(volume.Spec.HostPath.Path); err != nil {
				return err
			}
		}
		fmt.Printf("deleted released volume %s\n", volume.Name)
	}
	return nil
}
