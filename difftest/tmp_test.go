package difftest

import (
	"testing"

	upocagent "contrib.go.opencensus.io/exporter/ocagent"
	"github.com/zerocensus/ocagent"
	"github.com/zerocensus/ocagent/internal/mockagent"
	_ "github.com/census-instrumentation/opencensus-proto/gen-go/trace/v1"
	_ "google.golang.org/protobuf/reflect/protoreflect"
	_ "go.opencensus.io/trace"
)

func TestX(t *testing.T) { _ = upocagent.WithInsecure; _ = ocagent.WithInsecure; _ = mockagent.Start }
