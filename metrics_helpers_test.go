package ocagent

import (
	upagentmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/agent/metrics/v1"
	upmetricspb "github.com/census-instrumentation/opencensus-proto/gen-go/metrics/v1"
)

func sampleMetrics() *upagentmetricspb.ExportMetricsServiceRequest {
	return &upagentmetricspb.ExportMetricsServiceRequest{Metrics: []*upmetricspb.Metric{{
		MetricDescriptor: &upmetricspb.MetricDescriptor{Name: "m", Type: upmetricspb.MetricDescriptor_CUMULATIVE_INT64},
		Timeseries:       []*upmetricspb.TimeSeries{{Points: []*upmetricspb.Point{{Value: &upmetricspb.Point_Int64Value{Int64Value: 1}}}}},
	}}}
}
