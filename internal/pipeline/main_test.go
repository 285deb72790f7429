package pipeline

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: Run must
// join the result collector, and status reporting must stop with its context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
