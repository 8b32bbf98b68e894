// Package bench holds the throughput benchmarks that compare each adapter
// with the raw client library on the same broker in the same run. Run them
// with:
//
//	go test -run '^$' -bench . -benchtime 20000x ./bench/
//
// Each benchmark reports msgs/s per variant and logs the ratio of the SDK to
// the raw client. Results and the machine they were measured on are in
// docs/benchmarks.md.
package bench
