// Package slab allocates a batch of values together with the slice of
// pointers to them that the SDK and its drivers pass around, in as few
// allocations as it can.
package slab

// New returns pointers to n zero values of T, in order, from one
// allocation when n is 1 (most publishes carry one message) and two
// otherwise.
func New[T any](n int) []*T {
	if n == 1 {
		one := new(struct {
			v T
			p [1]*T
		})
		one.p[0] = &one.v
		return one.p[:]
	}
	vals := make([]T, n)
	ptrs := make([]*T, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return ptrs
}
