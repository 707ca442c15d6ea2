// A scrape target for ingest/tests/prometheus3.rs, built by
// scripts/prometheus3.sh: client_golang metrics of every kind the test follows
// through ingest into Kafka, changing all the time so every scrape brings new
// samples and new exemplars.
//
//	prometheus3-target -listen 127.0.0.1:PORT
//
// Metrics: a counter with exemplars; a histogram that is native and classic at
// once, with exemplars; a classic-only histogram with exemplars; a native-only
// histogram; a gauge. Each has help text, and those with a unit declare it.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9464", "address to serve /metrics on")
	flag.Parse()

	registry := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_requests_total",
		Help: "Requests served, by status code.",
	}, []string{"code"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                            "demo_request_duration_seconds",
		Help:                            "Time to serve a request.",
		Unit:                            "seconds",
		Buckets:                         []float64{0.005, 0.01, 0.05, 0.1, 0.5, 1},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  100,
		NativeHistogramMinResetDuration: time.Hour,
		NativeHistogramMaxExemplars:     10,
	})
	size := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "demo_response_size_bytes",
		Help:    "Size of a response.",
		Unit:    "bytes",
		Buckets: prometheus.ExponentialBuckets(100, 10, 5),
	})
	queueWait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "demo_queue_wait_seconds",
		Help:                        "Time a request waits for a worker.",
		Unit:                        "seconds",
		NativeHistogramBucketFactor: 1.2,
	})
	temperature := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "demo_temperature_celsius",
		Help: "Temperature of the machine room.",
		Unit: "celsius",
	})
	registry.MustRegister(requests, latency, size, queueWait, temperature)

	go func() {
		for n := 0; ; n++ {
			trace := prometheus.Labels{"trace_id": fmt.Sprintf("%016x", rand.Uint64())}
			code := []string{"200", "200", "200", "404", "500"}[n%5]
			requests.WithLabelValues(code).(prometheus.ExemplarAdder).AddWithExemplar(1, trace)
			latency.(prometheus.ExemplarObserver).ObserveWithExemplar(rand.ExpFloat64()/20, trace)
			size.(prometheus.ExemplarObserver).ObserveWithExemplar(rand.Float64()*2e6, trace)
			queueWait.Observe(rand.ExpFloat64() / 100)
			temperature.Set(20 + rand.Float64()*5)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	http.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	log.Printf("serving /metrics on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
