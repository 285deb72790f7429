// Package dedupe drops the duplicates that at-least-once delivery leaves in a
// Kinesis stream, by the record ids the producer gives user records
// (aggregation.RecordID). It is pure: no I/O, no goroutines, no global state.
//
// # Where the duplicates come from, and the ids
//
// A PutRecords call that fails after the service stored its records (a
// connection reset, a timeout) is retried, and the stream holds the records
// twice; a record re-packed into another aggregate after a partial failure or
// a reshard is a copy too. A producer with record ids on gives every user
// record an id (pid, seq) that is the same on every copy, and unique over
// everything the producer writes: pid a random (or caller-derived) producer
// id of 32 to 128 lower-case hex digits, seq strictly increasing within one
// pid in the order the records were put.
//
// The ids travel in the tags of the KPL aggregate, a field every other reader
// ignores (the aggregation package doc has the details):
//
//   - tag "pid" = the producer id, on at least the first user record of each
//     aggregate; a record without one has the pid of the nearest earlier
//     record of its aggregate that carries one;
//   - tag "seq" = the decimal sequence number, on at least the first user
//     record of each aggregate; a record without one has the seq of the
//     previous user record of its aggregate plus one.
//
// aggregation.Deaggregate resolves them into UserRecord.ID.
//
// # The filter
//
// A Filter keeps, per producer id, the highest seq H checked and a bitmap of
// the seqs in (H-W, H] already checked: W bits, a sliding window like the
// replay windows of IPsec and DTLS (RFC 4303, RFC 6347). Check answers, for
// each user record in the order a consumer reads them:
//
//   - New: the first copy of its id (or a record without an id): keep it;
//   - Duplicate: its id was checked before: drop it;
//   - Stale: its seq is W or more below H: the window no longer covers it,
//     so the filter cannot tell; keep it (at least once, never a loss);
//   - Reread: its position (shard, sequence number, sub-sequence number) is
//     at or before the last position checked on that shard: the consumer
//     read this very Kinesis record again. Nothing changes.
//
// # What is guaranteed
//
// Exactness: a Duplicate verdict is always right; the filter never drops
// the first copy of a record it checks. (It relies on the producer's
// contract: one id, one record.)
//
// Coverage: a copy of (pid, s) is reported Duplicate whenever an earlier
// copy of (pid, s) was checked and, at the time of the later check, H - s < W
// for that pid, and the pid was not forgotten in between. A pid is forgotten
// only when MaxProducers other pids have been checked since it was last
// checked; it then starts afresh (missed duplicates, never a wrong drop).
//
// Sizing W: a producer puts at most R records per second under one pid and
// retries a record at most RecordTTL after it was put; so when the copy of s
// is stored, no seq above s + R×RecordTTL of that pid is in the stream yet.
// A consumer that reads the shards carrying that pid at most D seconds
// apart (in write time) has therefore seen H < s + R×(RecordTTL + D) when it
// checks the copy. Every duplicate made by a retry is caught when
//
//	W >= R × (RecordTTL + D).
//
// With the producer's one pid per shard lane, R is at most the shard limit
// of 1,000 records/s, D is 0 for one shard read in order and stays small
// across a reshard (parents are read before children, and a pid's records
// reach only the shards its lane maps to); the default W of 65,536 then
// covers a RecordTTL of 65 s. A pid shared by a whole producer at R = 20,000
// records/s with a RecordTTL of 30 s needs W >= 600,000 (75 KiB per pid).
//
// # Reshards and restarts
//
// The window is per producer id, not per shard: copies of one record that
// land in a parent and in a child shard, or in two children, meet in the
// same window, whatever the interleaving of reads across shards (within the
// D above). Records of one shard must be checked in shard order.
//
// A consumer that restarts resumes from its checkpoint. Save the filter with
// the checkpoint (MarshalBinary, a versioned binary form) and restore it
// before reading on (UnmarshalBinary): the records read again after the
// checkpoint are then checked against the state as it was at the checkpoint,
// and get the verdicts they got the first time. A state saved later than
// the checkpoint gives Reread for the records between the two (the shard
// positions it holds are past them); a state saved earlier misses the ids
// checked in between (missed duplicates, never a wrong drop).
//
// # Cost
//
// Memory is bounded: W/8 bytes and about 100 more per producer id, up to
// MaxProducers of them, plus the last position of up to MaxShards shards.
// Check makes no allocation once warm; BenchmarkCheck measures its time per
// record.
package dedupe
