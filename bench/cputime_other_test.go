//go:build !unix

package bench

import "time"

// processCPU returns 0: this platform's CPU time is not read, and the CPU
// row of the modes table shows NaN.
func processCPU() time.Duration { return 0 }
