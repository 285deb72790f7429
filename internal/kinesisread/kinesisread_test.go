package kinesisread

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestHashKeyRange(t *testing.T) {
	t.Parallel()
	shard := func(start, end string) types.Shard {
		return types.Shard{HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(start), EndingHashKey: aws.String(end)}}
	}
	tests := []struct {
		name       string
		shard      types.Shard
		start, end string
		ok         bool
	}{
		{name: "a range is parsed", shard: shard("7", "340282366920938463463374607431768211455"), start: "7", end: "340282366920938463463374607431768211455", ok: true},
		{name: "a shard without a range has none", shard: types.Shard{}},
		{name: "a start that is not a number is no range", shard: shard("x", "9")},
		{name: "an end beyond 2^128-1 is no range", shard: shard("0", "340282366920938463463374607431768211456")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start, end, ok := HashKeyRange(tc.shard)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && (start.String() != tc.start || end.String() != tc.end) {
				t.Errorf("range %s to %s, want %s to %s", start, end, tc.start, tc.end)
			}
		})
	}
}
