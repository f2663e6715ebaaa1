// Command probe is the test cluster's own container image program: a static binary that serves
// HTTP, fetches a URL or resolves a name and exits with a status, so the cluster's smoke check can
// run real pods without the platform's images.
//
//	probe serve [--listen :8080]     answers every path with "probe <hostname> <path>"
//	probe get URL [--timeout 5s]     prints the body; exit 0 on a 2xx answer, 1 otherwise
//	probe resolve NAME               prints the addresses; exit 0 when there is one, 1 otherwise
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	command := "serve"
	args := os.Args[1:]
	if len(args) > 0 {
		command, args = args[0], args[1:]
	}
	switch command {
	case "serve":
		os.Exit(serve(args))
	case "get":
		os.Exit(get(args))
	case "resolve":
		os.Exit(resolve(args))
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown command %q (serve, get URL, resolve NAME)\n", command)
		os.Exit(2)
	}
}

func serve(args []string) int {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := flags.String("listen", ":8080", "address to serve HTTP on")
	_ = flags.Parse(args)
	host, _ := os.Hostname()
	server := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "probe %s %s\n", host, r.URL.Path)
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	fmt.Printf("probe: serving on %s\n", *listen)
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	return 0
}

func get(args []string) int {
	flags := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := flags.Duration("timeout", 5*time.Second, "give up after this long")
	_ = flags.Parse(args)
	if flags.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "probe: get needs one URL")
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	res, err := client.Get(flags.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	defer res.Body.Close()
	_, _ = io.Copy(os.Stdout, res.Body)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "probe: %s answered %s\n", flags.Arg(0), res.Status)
		return 1
	}
	return 0
}

func resolve(args []string) int {
	flags := flag.NewFlagSet("resolve", flag.ExitOnError)
	timeout := flags.Duration("timeout", 5*time.Second, "give up after this long")
	_ = flags.Parse(args)
	if flags.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "probe: resolve needs one name")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addresses, err := net.DefaultResolver.LookupHost(ctx, flags.Arg(0))
	if err != nil || len(addresses) == 0 {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	fmt.Println(strings.Join(addresses, "\n"))
	return 0
}
