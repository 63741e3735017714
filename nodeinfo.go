package ocagent

import (
	"os"
	"time"

	commonpb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/common/v1"
	opencensus "go.opencensus.io"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Version is the exporter version reported in the Node, as upstream.
const Version = "0.0.1"

// startTime stands for the process start time, as upstream: the time this
// package was initialised.
var startTime = time.Now()

// NodeWithStartTime creates a node using nodeName and derives the host name
// from the HOSTNAME environment variable, the pid and start time of this
// process, and the language and library versions.
func NodeWithStartTime(nodeName string) *commonpb.Node {
	return &commonpb.Node{
		Identifier: &commonpb.ProcessIdentifier{
			HostName:       os.Getenv("HOSTNAME"),
			Pid:            uint32(os.Getpid()),
			StartTimestamp: timestamppb.New(startTime),
		},
		LibraryInfo: &commonpb.LibraryInfo{
			Language:           commonpb.LibraryInfo_GO_LANG,
			ExporterVersion:    Version,
			CoreLibraryVersion: opencensus.Version(),
		},
		ServiceInfo: &commonpb.ServiceInfo{Name: nodeName},
		Attributes:  make(map[string]string),
	}
}
