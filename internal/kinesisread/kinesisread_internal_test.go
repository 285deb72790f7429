package kinesisread

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestParentsFirst(t *testing.T) {
	t.Parallel()
	// shard builds a shard with its parents ("" for none).
	shard := func(id, parent, adjacent string) types.Shard {
		sh := types.Shard{ShardId: aws.String(id)}
		if parent != "" {
			sh.ParentShardId = aws.String(parent)
		}
		if adjacent != "" {
			sh.AdjacentParentShardId = aws.String(adjacent)
		}
		return sh
	}
	tests := []struct {
		name   string
		shards []types.Shard // sorted by id
		want   []string
	}{
		{name: "shards without parents keep their id order",
			shards: []types.Shard{shard("a", "", ""), shard("b", "", ""), shard("c", "", "")},
			want:   []string{"a", "b", "c"}},
		{name: "a child listed before its parent comes after it",
			shards: []types.Shard{shard("a", "c", ""), shard("b", "", ""), shard("c", "", "")},
			want:   []string{"b", "c", "a"}},
		{name: "a merged shard comes after both parents",
			shards: []types.Shard{shard("a", "b", "d"), shard("b", "", ""), shard("c", "", ""), shard("d", "", "")},
			want:   []string{"b", "c", "d", "a"}},
		{name: "a parent that is not listed (trimmed) does not hold its child back",
			shards: []types.Shard{shard("a", "gone", ""), shard("b", "", "")},
			want:   []string{"a", "b"}},
		{name: "a cycle keeps the rest by id",
			shards: []types.Shard{shard("a", "", ""), shard("b", "c", ""), shard("c", "b", "")},
			want:   []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, sh := range parentsFirst(tt.shards) {
				got = append(got, aws.ToString(sh.ShardId))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
		})
	}
}
