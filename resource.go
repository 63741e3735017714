package ocagent

import (
	"context"
	"fmt"

	resourcepb "github.com/census-instrumentation/opencensus-proto/gen-go/resource/v1"
	"go.opencensus.io/resource"
)

// OC_RESOURCE_LABELS without one.
func detectResource(detector resource.Detector) (*resourcepb.Resource, error) {
	if detector != nil {
		res, err := detector(context.Background())
		if err != nil {
			return nil, fmt.Errorf("ocagent: resource detector: %w", err)
		}
		return resourceToProto(res), nil
	}
	res, _ := resource.FromEnv(context.Background())
	return resourceToProto(res), nil
}

func resourceToProto(rs *resource.Resource) *resourcepb.Resource {
	if rs == nil {
		return nil
	}
	r := &resourcepb.Resource{Type: rs.Type}
	if rs.Labels != nil {
		r.Labels = make(map[string]string, len(rs.Labels))
		for k, v := range rs.Labels {
			r.Labels[k] = v
		}
	}
	return r
}
