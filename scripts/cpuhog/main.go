// Command cpuhog keeps every core busy, for the loaded test pass (make
// test-loaded): the tests must give the same verdicts on a busy machine as
// on an idle one (issue 21). It is bounded three ways: the caller kills it
// (the Makefile's trap, on success and failure alike), it exits after -for,
// and it exits as soon as the process that started it is gone.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

var sink atomic.Uint64

func main() {
	limit := flag.Duration("for", 10*time.Minute, "exit after this long in any case")
	procs := flag.Int("procs", runtime.NumCPU(), "busy goroutines (one per core by default)")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	parent := os.Getppid()
	for range *procs {
		go spin()
	}
	fmt.Fprintf(os.Stderr, "cpuhog: %d busy goroutines for at most %v (pid %d)\n", *procs, *limit, os.Getpid())
	end := time.Now().Add(*limit)
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		if os.Getppid() != parent { // orphaned: whoever started it is gone
			return
		}
	}
}

// spin does integer work forever, without allocating or yielding.
func spin() {
	x := uint64(1)
	for {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink.Store(x)
	}
}
