// Command ociimage writes a one-layer OCI image archive (oci-layout, index.json, blobs) holding
// the given files, for `ctr images import`: the test cluster's pause and probe images are built
// from source with it instead of being pulled. Same input, same bytes: every timestamp is zero.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	out := flag.String("out", "", "archive to write")
	name := flag.String("name", "", "image reference, e.g. registry.k8s.io/pause:3.10")
	entrypoint := flag.String("entrypoint", "", "comma-separated entrypoint")
	cmd := flag.String("cmd", "", "comma-separated default arguments")
	user := flag.String("user", "", "user the container runs as (numeric)")
	arch := flag.String("arch", "amd64", "architecture of the files (OCI name: amd64, arm64)")
	var contents files
	flag.Var(&contents, "file", "IMAGE_PATH=HOST_PATH, repeatable; files are 0755")
	flag.Parse()
	if *out == "" || *name == "" || len(contents) == 0 {
		fmt.Fprintln(os.Stderr, "ociimage: --out, --name and at least one --file are required")
		os.Exit(2)
	}
	if err := write(*out, *name, *arch, split(*entrypoint), split(*cmd), *user, contents); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func split(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

func write(out, name, arch string, entrypoint, cmd []string, user string, contents []string) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, entry := range contents {
		imagePath, hostPath, ok := strings.Cut(entry, "=")
		if !ok {
			return fmt.Errorf("--file %q: want IMAGE_PATH=HOST_PATH", entry)
		}
		data, err := os.ReadFile(hostPath)
		if err != nil {
			return err
		}
		header := &tar.Header{Name: strings.TrimPrefix(imagePath, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(header); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	blobs := map[string][]byte{}
	add := func(data []byte) string {
		sum := sha256.Sum256(data)
		digest := "sha256:" + hex.EncodeToString(sum[:])
		blobs[digest] = data
		return digest
	}
	layerDigest := add(layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": entrypoint, "Cmd": cmd, "User": user, "WorkingDir": "/"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	configDigest := add(config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: configDigest, Size: len(config)},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layerDigest, Size: layer.Len()}},
	})
	if err != nil {
		return err
	}
	manifestDigest := add(manifest)
	tag := name[strings.LastIndex(name, ":")+1:]
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType:   "application/vnd.oci.image.manifest.v1+json",
			Digest:      manifestDigest,
			Size:        len(manifest),
			Platform:    map[string]string{"architecture": arch, "os": "linux"},
			Annotations: map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
		}},
	})
	if err != nil {
		return err
	}

	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	put := func(path string, data []byte) error {
		if err := aw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := aw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for _, digest := range []string{layerDigest, configDigest, manifestDigest} {
		if err := put("blobs/sha256/"+strings.TrimPrefix(digest, "sha256:"), blobs[digest]); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, archive.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
