package aggregation

import (
	"errors"
	"fmt"
)

// ErrAggregateFull is returned by Aggregator.Add when the record would push
// the aggregate past its size limit or its count limit. The aggregator is left
// exactly as it was; the caller sends the current aggregate, resets it, and
// adds the record again. If the record does not fit an empty aggregator either
// (see SingleRecordSize), it can never be aggregated with that size limit.
var ErrAggregateFull = errors.New("aggregation: aggregate is full")

// ErrInvalidPartitionKey is wrapped by the errors of ValidatePartitionKey.
var ErrInvalidPartitionKey = errors.New("aggregation: invalid partition key")

// ErrInvalidExplicitHashKey is wrapped by the errors of
// ValidateExplicitHashKey and ParseHashKey.
var ErrInvalidExplicitHashKey = errors.New("aggregation: invalid explicit hash key")

// ErrCorruptAggregate is wrapped by the errors of Deaggregate for data that
// has the magic prefix and a matching MD5 digest but a malformed protobuf body.
var ErrCorruptAggregate = errors.New("aggregation: corrupt aggregated record")

// ErrInvalidRecordID is wrapped by the errors of ValidateRecordID, and of
// Aggregator.Add for a record whose id is not valid.
var ErrInvalidRecordID = errors.New("aggregation: invalid record id")

// ErrMixedRecordIDs is returned by Aggregator.Add for a record with an id
// when the aggregate holds records without one, or the other way round: an
// aggregate's records all have ids or none has. It wraps ErrAggregateFull, so
// a caller that sends the aggregate, resets it and adds the record again on
// ErrAggregateFull needs nothing else; the record always fits an empty
// aggregate as far as ids go.
var ErrMixedRecordIDs = fmt.Errorf("%w: records with and without ids cannot share an aggregate", ErrAggregateFull)
